// Package synth makes deterministic synthetic person fingerprints for the
// hac tests, benchmarks and the SciPy comparison.
package synth

import (
	"math"
	"math/rand/v2"
)

// Fingerprint layout of the original: a 128-d face part and a 512-d
// clothing part, each normalised to unit length.
const (
	FaceDim  = 128
	ClothDim = 512
	Dim      = FaceDim + ClothDim
)

// Fingerprints returns n fingerprints of about n/60 persons (at least 2):
// Gaussian blobs around a random centre per person, noise 0.6 of the
// centre's scale, both halves unit-normalised. The same (n, seed) always
// gives the same points.
func Fingerprints(n int, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	persons := max(2, n/60)
	centres := make([][]float64, persons)
	for p := range centres {
		centres[p] = gaussian(rng, Dim)
	}
	out := make([][]float64, n)
	for i := range out {
		c := centres[rng.IntN(persons)]
		v := make([]float64, Dim)
		for k := range v {
			v[k] = c[k] + 0.6*rng.NormFloat64()
		}
		normalise(v[:FaceDim])
		normalise(v[FaceDim:])
		out[i] = v
	}
	return out
}

func gaussian(rng *rand.Rand, d int) []float64 {
	v := make([]float64, d)
	for k := range v {
		v[k] = rng.NormFloat64()
	}
	return v
}

func normalise(v []float64) {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	s = math.Sqrt(s)
	for k := range v {
		v[k] /= s
	}
}
