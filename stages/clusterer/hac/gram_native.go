package hac

import (
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
)

// A native BLAS (OpenBLAS, registered by blas_openblas.go unless built with
// the noblas tag or without cgo) computes the Gram matrix in large panels;
// gonum's Go BLAS stays the fallback.
var (
	nativeBLAS     blas.Float64
	nativeBLASName string
	nativeThreads  func(int) int // sets the library's own thread count, returns the old one
	nativeDisabled atomic.Bool
	nativeMu       sync.Mutex // one Pdist at a time changes the library's thread count
)

// registerNativeBLAS makes impl the Gram matrix's BLAS; setThreads (may be
// nil) sets the library's own thread count.
func registerNativeBLAS(impl blas.Float64, name string, setThreads func(int) int) {
	nativeBLAS, nativeBLASName, nativeThreads = impl, name, setThreads
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
// values, one per core) stays a percent or so of the condensed array.
const panelRows = 256

// runNative fills out like run, by row panels: rows [r0,r1) against columns
// [r0,n), the diagonal block by Dsyrk and the rest by one Dgemm, into one
// buffer, then turned into distances while it is warm. Each core takes
// panels from a shared counter and calls the BLAS single-threaded: a
// threaded BLAS would leave its workers spinning through the conversion.
func (g *gram) runNative(out []float64, impl blas.Float64) {
	n := g.n
	nPanels := (n - 1 + panelRows - 1) / panelRows
	workers := min(runtime.GOMAXPROCS(0), nPanels)
	if nativeThreads != nil && workers > 1 {
		nativeMu.Lock()
		defer nativeMu.Unlock()
		defer nativeThreads(nativeThreads(1))
	}
	// Panels in order of decreasing width: the last ones, which the
	// workers finish on, are the smallest.
	onWorkers(nPanels, min(panelRows, n-1)*n, func(p int, panel []float64) {
		g.panel(out, panel, impl, p*panelRows, min(p*panelRows+panelRows, n-1))
	})
}

// panel computes the distances of rows [r0,r1) to every later point.
func (g *gram) panel(out, buf []float64, impl blas.Float64, r0, r1 int) {
	n, dim, x := g.n, g.dim, g.x
	m, w := r1-r0, n-r0
	a := x[r0*dim : r1*dim]
	impl.Dsyrk(blas.Upper, blas.NoTrans, m, dim, 1, a, dim, 0, buf, w)
	impl.Dgemm(blas.NoTrans, blas.Trans, m, n-r1, dim, 1, a, dim, x[r1*dim:], dim, 0, buf[m:], w)
	for i := r0; i < r1; i++ {
		gv := buf[(i-r0)*w+i+1-r0 : (i-r0+1)*w]
		dst := out[CondensedIndex(n, i, i+1):][:len(gv)]
		if g.cosine {
			g.cosineRow(dst, gv, i, i+1)
		} else {
			g.euclidRow(dst, gv, i, i+1)
		}
	}
	g.rowsDone(r0, r1)
}
