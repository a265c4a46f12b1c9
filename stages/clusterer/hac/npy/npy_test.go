package npy

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	data := []float64{0, -1.5, math.Pi, math.Inf(1), 1e-310, -0.0}
	for _, shape := range [][]int{{2, 3}, {6}, {3, 2, 1}} {
		for _, f32 := range []bool{false, true} {
			var buf bytes.Buffer
			if err := Encode(&buf, data, shape, f32); err != nil {
				t.Fatal(err)
			}
			if off := bytes.IndexByte(buf.Bytes(), '\n') + 1; off%64 != 0 {
				t.Errorf("data starts at %d, not a multiple of 64", off)
			}
			a, err := Decode(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("shape %v f32 %v: %v", shape, f32, err)
			}
			if !slices.Equal(a.Shape, shape) || a.Float32 != f32 {
				t.Errorf("shape %v f32 %v: decoded shape %v f32 %v", shape, f32, a.Shape, a.Float32)
			}
			for i, v := range data {
				want := v
				if f32 {
					want = float64(float32(v))
				}
				if a.Data[i] != want && !(math.IsNaN(want) && math.IsNaN(a.Data[i])) {
					t.Errorf("shape %v f32 %v: value %d = %v, want %v", shape, f32, i, a.Data[i], want)
				}
			}
		}
	}
}

func TestRows(t *testing.T) {
	var buf bytes.Buffer
	rows := [][]float64{{1, 2, 3}, {4, 5, 6}}
	if err := EncodeRows(&buf, rows, false); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "p.npy")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Rows()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, rows, slices.Equal) {
		t.Errorf("rows %v, want %v", got, rows)
	}
	if err := EncodeRows(&buf, [][]float64{{1}, {1, 2}}, false); !errors.Is(err, ErrFormat) {
		t.Errorf("ragged rows: %v", err)
	}
}

func TestBadFiles(t *testing.T) {
	var good bytes.Buffer
	if err := Encode(&good, []float64{1, 2}, []int{2}, false); err != nil {
		t.Fatal(err)
	}
	g := good.Bytes()
	hdr := func(dict string) []byte {
		b := []byte(Magic + "\x01\x00")
		b = append(b, byte(len(dict)+1), 0)
		return append(append(b, dict...), '\n')
	}
	cases := map[string][]byte{
		"empty":       nil,
		"magic":       []byte("NUMPY\x01\x00"),
		"version":     append([]byte(Magic+"\x04\x00"), g[8:]...),
		"truncated":   g[:len(g)-3],
		"trailing":    append(slices.Clone(g), 0),
		"fortran":     hdr("{'descr': '<f8', 'fortran_order': True, 'shape': (0,), }"),
		"int dtype":   hdr("{'descr': '<i8', 'fortran_order': False, 'shape': (0,), }"),
		"object":      hdr("{'descr': '|O', 'fortran_order': False, 'shape': (0,), }"),
		"no shape":    hdr("{'descr': '<f8', 'fortran_order': False}"),
		"bad shape":   hdr("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }"),
		"not tuple":   hdr("{'descr': '<f8', 'fortran_order': False, 'shape': (3), }"),
		"huge shape":  hdr("{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 100000000000), }"),
		"unknown key": hdr("{'descr': '<f8', 'fortran_order': False, 'shape': (0,), 'x': 1}"),
		"short data":  hdr("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000,), }"),
	}
	dir := t.TempDir()
	for name, b := range cases {
		if _, err := Decode(bytes.NewReader(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
		// A file, whose size is known, takes another path.
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".npy")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadFile(path); !errors.Is(err, ErrFormat) {
			t.Errorf("%s as a file: %v, want ErrFormat", name, err)
		}
	}
	if _, err := Decode(bytes.NewReader(hdr("{\"shape\": (), \"fortran_order\": False, \"descr\": \">f4\"}"))); err == nil {
		t.Error("scalar without its 4 bytes decoded")
	}
}

// TestNumPy: files NumPy writes (both dtypes and byte orders, versions 1.0
// and 2.0) read back, and NumPy reads ours.
func TestNumPy(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import numpy").Run() != nil {
		t.Skip("python3 with numpy not available")
	}
	dir := t.TempDir()
	script := `
import sys, numpy as np
from numpy.lib import format as f
d = sys.argv[1]
x = np.arange(12, dtype='<f8').reshape(3, 4) / 7
for name, dt in [('f8', '<f8'), ('f4', '<f4'), ('bf8', '>f8'), ('bf4', '>f4')]:
    np.save(d + '/' + name + '.npy', x.astype(dt))
with open(d + '/v2.npy', 'wb') as fh:
    f.write_array(fh, x, version=(2, 0))
y = np.load(d + '/go.npy')
assert y.dtype == np.float64 and y.shape == (2, 3), (y.dtype, y.shape)
assert (y == np.array([[0.5, -1, 3], [1e300, 2, 1/3]])).all(), y
`
	if err := Encode(mustCreate(t, filepath.Join(dir, "go.npy")), []float64{0.5, -1, 3, 1e300, 2, 1.0 / 3}, []int{2, 3}, false); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy: %v\n%s", err, out)
	}
	for _, name := range []string{"f8", "f4", "bf8", "bf4", "v2"} {
		a, err := ReadFile(filepath.Join(dir, name+".npy"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Shape, []int{3, 4}) || a.Float32 != strings.HasSuffix(name, "f4") {
			t.Errorf("%s: shape %v float32 %v", name, a.Shape, a.Float32)
		}
		for i, v := range a.Data {
			want := float64(i) / 7
			if a.Float32 {
				want = float64(float32(want))
			}
			if v != want {
				t.Errorf("%s: value %d = %v, want %v", name, i, v, want)
				break
			}
		}
	}
}

func mustCreate(t *testing.T, path string) *os.File {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// FuzzDecode: any input gives an array or an ErrFormat error, never a
// panic, and a decoded array encodes and decodes to itself.
func FuzzDecode(f *testing.F) {
	var b bytes.Buffer
	_ = Encode(&b, []float64{1, 2, 3, 4}, []int{2, 2}, false)
	f.Add(b.Bytes())
	b.Reset()
	_ = Encode(&b, []float64{1, 2}, []int{2}, true)
	f.Add(b.Bytes())
	f.Add([]byte(Magic + "\x02\x00\x10\x00\x00\x00{'descr':'>f4',}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Decode(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		var out bytes.Buffer
		if err := Encode(&out, a.Data, a.Shape, a.Float32); err != nil {
			t.Fatal(err)
		}
		back, err := Decode(&out)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(back.Shape, a.Shape) || len(back.Data) != len(a.Data) {
			t.Fatalf("round trip: shape %v→%v", a.Shape, back.Shape)
		}
		for i := range a.Data {
			if math.Float64bits(back.Data[i]) != math.Float64bits(a.Data[i]) && !(math.IsNaN(a.Data[i]) && math.IsNaN(back.Data[i])) {
				t.Fatalf("round trip: value %d %v→%v", i, a.Data[i], back.Data[i])
			}
		}
	})
}
