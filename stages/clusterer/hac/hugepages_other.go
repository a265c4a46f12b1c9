//go:build !linux

package hac

// newCondensed returns a zeroed condensed array for n points.
func newCondensed(n int) []float64 { return make([]float64, CondensedLen(n)) }
