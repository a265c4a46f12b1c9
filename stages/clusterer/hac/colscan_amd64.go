package hac

// Slice wrappers of the assembly loops (colscan_amd64.s), with the same
// signatures as the Go loops they replace (colscan.go). Every index they
// read must be in range: active holds active clusters, off the row offsets
// of d, x and y are clusters; the callers' slices guarantee it.

func colMin(d []float64, off []int, active []int32, x int, cur float64) (float64, int) {
	if len(active) == 0 {
		return cur, -1
	}
	return colMinAsm(&d[0], &off[0], &active[0], len(active), x, cur)
}

func averageCols(d []float64, off []int, active []int32, x, y int, fx, fy, fxy float64) {
	if len(active) > 0 {
		averageColsAsm(&d[0], &off[0], &active[0], len(active), x, y, fx, fy, fxy)
	}
}

func averageRowCol(d []float64, off []int, active []int32, ox, y int, fx, fy, fxy float64) {
	if len(active) > 0 {
		averageRowColAsm(&d[0], &off[0], &active[0], len(active), ox, y, fx, fy, fxy)
	}
}

//go:noescape
func colMinAsm(d *float64, off *int, active *int32, n int, x int, cur float64) (best float64, pos int)

//go:noescape
func averageColsAsm(d *float64, off *int, active *int32, n int, x, y int, fx, fy, fxy float64)

//go:noescape
func averageRowColAsm(d *float64, off *int, active *int32, n int, ox, y int, fx, fy, fxy float64)
