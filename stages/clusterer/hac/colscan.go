package hac

// The NN-chain's reads down a column of the condensed matrix (one element
// per row, so one cache line per element, at a stride that shrinks by one
// element per row) defeat the CPU's stride prefetchers: each is a miss to
// memory, and the linkage waited on them most of its time. On amd64 these
// loops are in assembly (colscan_amd64.s) that prefetches the element 16
// positions ahead — the linkage at n = 10,000 went from 1.1 to 0.8 s on one
// core here. Go has no prefetch instruction. The Go loops below are the
// reference, and the code on other architectures; they compute the same
// values in the same order (no fused multiply-add), bit for bit.

// colMinGo is the first position k of the smallest d[off[active[k]]+x]
// strictly below cur, and that value; pos is −1 (and best cur) if none is.
func colMinGo(d []float64, off []int, active []int32, x int, cur float64) (best float64, pos int) {
	pos = -1
	for k, i32 := range active {
		if v := d[off[i32]+x]; v < cur {
			cur, pos = v, k
		}
	}
	return cur, pos
}

// averageColsGo sets, for every i in active (all below x < y), D(i,y) to
// the size-weighted mean of D(i,x) and D(i,y): both read down columns.
func averageColsGo(d []float64, off []int, active []int32, x, y int, fx, fy, fxy float64) {
	for _, i32 := range active {
		o := off[i32]
		d[o+y] = (float64(fx*d[o+x]) + float64(fy*d[o+y])) / fxy
	}
}

// averageRowColGo is averageColsGo for x < i < y: D(x,i) is read along x's
// row (ox = off[x]), D(i,y) down y's column.
func averageRowColGo(d []float64, off []int, active []int32, ox, y int, fx, fy, fxy float64) {
	for _, i32 := range active {
		o := off[i32]
		d[o+y] = (float64(fx*d[ox+int(i32)]) + float64(fy*d[o+y])) / fxy
	}
}
