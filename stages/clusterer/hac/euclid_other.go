//go:build !amd64

package hac

func euclidRowVector(dst, gv, sqj []float64, sqi float64) bool { return false }

const hasAVX2 = false
