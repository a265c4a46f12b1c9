//go:build !linux

package hac

// newCondensed returns a zeroed condensed array for n points.
func newCondensed(n int) []float64 { return make([]float64, CondensedLen(n)) }

// newReadBuffer returns an empty buffer of capacity size for a file's text.
func newReadBuffer(size int) []byte { return make([]byte, 0, size) }
