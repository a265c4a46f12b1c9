//go:build cgo && !noblas

package hac

import "github.com/personcluster/personcluster/stages/clusterer/hac/blas"

// OpenBLAS computes the Gram matrix unless built with the noblas tag.
func init() { registerNativeBLAS(blas.Float64(), blas.Name(), blas.SetThreads) }
