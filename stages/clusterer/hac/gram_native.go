package hac

import (
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
)

// A native BLAS (OpenBLAS, registered by blas_openblas.go unless built with
// the noblas tag or without cgo) computes the Gram matrix in a few large
// calls that it threads itself; gonum's Go BLAS stays the fallback.
var (
	nativeBLAS     blas.Float64
	nativeBLASName string
	nativeDisabled atomic.Bool
)

// registerNativeBLAS makes impl the Gram matrix's BLAS.
func registerNativeBLAS(impl blas.Float64, name string) {
	nativeBLAS, nativeBLASName = impl, name
}

// BLAS names the BLAS that Pdist uses: the native library, or "gonum (pure Go)".
func BLAS() string {
	if b := activeNativeBLAS(); b != nil {
		return nativeBLASName
	}
	return "gonum (pure Go)"
}

// UseNativeBLAS turns the native BLAS on or off (when one is linked in) and
// returns the previous setting; with it off Pdist takes gonum's Go path.
// Both give the same distances to ~1e-12 relative and the same partitions.
func UseNativeBLAS(on bool) (was bool) {
	return !nativeDisabled.Swap(!on)
}

func activeNativeBLAS() blas.Float64 {
	if nativeDisabled.Load() {
		return nil
	}
	return nativeBLAS
}

// panelRows is the height of the row panels of the native path: tall enough
// for the BLAS to run near its peak, small enough that a panel (panelRows×n
// values) stays a percent or so of the condensed array.
const panelRows = 256

// runNative fills out like run, panel by panel: rows [r0,r1) against
// columns [r0,n), the diagonal block by Dsyrk and the rest by one Dgemm, into
// one buffer; then every core turns the panel's rows into distances.
func (g *gram) runNative(out []float64, impl blas.Float64) {
	n, dim, x := g.n, g.dim, g.x
	g.norms()
	panel := make([]float64, min(panelRows, n-1)*n)
	workers := runtime.GOMAXPROCS(0)
	for r0 := 0; r0 < n-1; r0 += panelRows {
		r1 := min(r0+panelRows, n-1) // the last point has no pair after it
		m, w := r1-r0, n-r0
		a := x[r0*dim : r1*dim]
		impl.Dsyrk(blas.Upper, blas.NoTrans, m, dim, 1, a, dim, 0, panel, w)
		impl.Dgemm(blas.NoTrans, blas.Trans, m, n-r1, dim, 1, a, dim, x[r1*dim:], dim, 0, panel[m:], w)
		// Rows shrink towards the end of a panel only a little: a shared
		// counter over rows balances well enough.
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(workers, m) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := r0 + int(next.Add(1)-1)
					if i >= r1 {
						return
					}
					row := panel[(i-r0)*w : (i-r0+1)*w]
					gv := row[i+1-r0:]
					dst := out[CondensedIndex(n, i, i+1):][:len(gv)]
					if g.cosine {
						g.cosineRow(dst, gv, i, i+1)
					} else {
						g.euclidRow(dst, gv, i, i+1)
					}
				}
			}()
		}
		wg.Wait()
	}
}
