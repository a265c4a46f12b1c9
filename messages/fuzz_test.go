package messages

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var sampleTime = time.Date(2026, 11, 25, 21, 41, 0, 0, time.UTC)

// seedGolden adds every golden file as a seed, so the fuzzer starts from real messages.
func seedGolden(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*.msgpack"))
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{0x93, 0xa1, 'x', 0x01, 0xc0})
}

// fuzzDecoder checks one decoder: it never panics, and whatever it accepts re-encodes and
// decodes to the same value.
func fuzzDecoder[T Message](f *testing.F) {
	seedGolden(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeAs[T](data)
		if err != nil {
			return
		}
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("re-encoding an accepted message: %v", err)
		}
		m2, err := DecodeAs[T](again)
		if err != nil {
			t.Fatalf("decoding a re-encoded message: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%+v\n%+v", m, m2)
		}
	})
}

func FuzzDecode(f *testing.F) {
	seedGolden(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err == nil && m == nil {
			t.Fatal("nil message without error")
		}
	})
}

func FuzzDecodeIngestRequest(f *testing.F) { fuzzDecoder[*IngestRequest](f) }
func FuzzDecodeFrame(f *testing.F)         { fuzzDecoder[*Frame](f) }
func FuzzDecodeEndOfStream(f *testing.F)   { fuzzDecoder[*EndOfStream](f) }
func FuzzDecodeFrameFaces(f *testing.F)    { fuzzDecoder[*FrameFaces](f) }
func FuzzDecodeFaceVectors(f *testing.F)   { fuzzDecoder[*FaceVectors](f) }
func FuzzDecodeClothVectors(f *testing.F)  { fuzzDecoder[*ClothVectors](f) }
func FuzzDecodeClusterResult(f *testing.F) { fuzzDecoder[*ClusterResult](f) }
func FuzzDecodeDeadLetter(f *testing.F)    { fuzzDecoder[*DeadLetter](f) }
func FuzzDecodeStatus(f *testing.F)        { fuzzDecoder[*Status](f) }
