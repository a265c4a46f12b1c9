// Package vec is the vector arithmetic the stages share: descriptors arrive as float32 and are
// normalised in float64, the same way wherever they are compared.
package vec

import "math"

// Norm returns the euclidean norm of v, summed in float64.
func Norm(v []float32) float64 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	return math.Sqrt(n)
}

// AppendUnit appends w·v/‖v‖ to dst: v's unit vector scaled by w (a zero vector stays zero).
func AppendUnit(dst []float64, v []float32, w float64) []float64 {
	n := Norm(v)
	if n == 0 {
		n = 1
	}
	for _, x := range v {
		dst = append(dst, w*float64(x)/n)
	}
	return dst
}

// Unit returns v/‖v‖ in float64 (a zero vector stays zero).
func Unit(v []float32) []float64 {
	return AppendUnit(make([]float64, 0, len(v)), v, 1)
}
