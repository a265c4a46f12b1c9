package blas

import (
	"slices"
	"strings"
	"testing"

	gblas "gonum.org/v1/gonum/blas"
)

func TestOpenBLAS(t *testing.T) {
	if name := Name(); !strings.HasPrefix(name, "OpenBLAS") {
		t.Errorf("Name() = %q", name)
	}
	// Upper triangle of A·Aᵀ for A = [[1 2] [3 4]]: [[5 11] [· 25]].
	a := []float64{1, 2, 3, 4}
	c := []float64{0, 0, -1, 0}
	Float64().Dsyrk(gblas.Upper, gblas.NoTrans, 2, 2, 1, a, 2, 0, c, 2)
	if want := []float64{5, 11, -1, 25}; !slices.Equal(c, want) {
		t.Errorf("Dsyrk: %v, want %v (lower triangle untouched)", c, want)
	}
	prev := SetThreads(2)
	if back := SetThreads(prev); back != 2 {
		t.Errorf("SetThreads: %d threads after setting 2", back)
	}
}
