//go:build !amd64

package hac

func colMin(d []float64, off []int, active []int32, x int, cur float64) (float64, int) {
	return colMinGo(d, off, active, x, cur)
}

func averageCols(d []float64, off []int, active []int32, x, y int, fx, fy, fxy float64) {
	averageColsGo(d, off, active, x, y, fx, fy, fxy)
}

func averageRowCol(d []float64, off []int, active []int32, ox, y int, fx, fy, fxy float64) {
	averageRowColGo(d, off, active, ox, y, fx, fy, fxy)
}
