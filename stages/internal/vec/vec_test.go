package vec

import (
	"math"
	"slices"
	"testing"
)

func TestUnit(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    []float32
		want []float64
	}{
		{"scaled", []float32{3, 4}, []float64{0.6, 0.8}},
		{"zero stays zero", []float32{0, 0}, []float64{0, 0}},
		{"empty", nil, []float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unit(tc.v); !slices.Equal(got, tc.want) {
				t.Errorf("Unit(%v) = %v, want %v", tc.v, got, tc.want)
			}
		})
	}
}

func TestAppendUnitWeights(t *testing.T) {
	got := AppendUnit([]float64{7}, []float32{0, 2}, 0.5)
	if want := []float64{7, 0, 0.5}; !slices.Equal(got, want) {
		t.Errorf("AppendUnit = %v, want %v", got, want)
	}
	if n := Norm([]float32{1, 1}); math.Abs(n-math.Sqrt2) > 1e-15 {
		t.Errorf("Norm = %v, want √2", n)
	}
}
