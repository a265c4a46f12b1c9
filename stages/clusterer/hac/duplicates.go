package hac

import (
	"hash/maphash"
	"math"
	"unsafe"
)

// Points that are equal bit for bit are at equal distances from every
// other point in SciPy's pdist: it computes each pair alone, the same way.
// The Gram path does not promise that: an optimised DGEMM rounds an entry
// by where it falls in its register tile (OpenBLAS's AVX-512 kernels sum
// the edge rows of a tile in another order than the inner ones), so
// d(a, c) and d(a′, c) for a duplicate a′ of a can differ in the last bit,
// and the linkage breaks SciPy's exact tie the other way. tieDuplicates
// restores the ties: every pair with a duplicate takes the distance of the
// pair of their first occurrences.

// duplicateOf maps each point to the first point equal to it bit for bit
// (itself if none), or returns nil when all points differ.
func duplicateOf(points [][]float64) []int32 {
	seed := maphash.MakeSeed()
	first := make(map[uint64]int32, len(points))
	var rep []int32
	var chained map[uint64][]int32 // hash collisions of unequal points
	for i, p := range points {
		h := maphash.Bytes(seed, float64Bytes(p))
		r, seen := first[h]
		if !seen {
			first[h] = int32(i)
			continue
		}
		found := int32(-1)
		if bitsEqual(points[r], p) {
			found = r
		} else {
			for _, c := range chained[h] {
				if bitsEqual(points[c], p) {
					found = c
					break
				}
			}
			if found < 0 {
				if chained == nil {
					chained = map[uint64][]int32{}
				}
				chained[h] = append(chained[h], int32(i))
				continue
			}
		}
		if rep == nil {
			rep = make([]int32, len(points))
			for k := range rep {
				rep[k] = int32(k)
			}
		}
		rep[i] = found
	}
	return rep
}

// float64Bytes views p's memory as bytes (for hashing; not kept).
func float64Bytes(p []float64) []byte {
	if len(p) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&p[0])), len(p)*8)
}

func bitsEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if math.Float64bits(a[k]) != math.Float64bits(b[k]) {
			return false
		}
	}
	return true
}

// tieDuplicates gives every pair (i, j) in which i or j is a duplicate the
// distance of (rep[i], rep[j]); pairs within one group of equal points keep
// their own (near zero, so computed exactly, as SciPy does).
func tieDuplicates(d []float64, n int, rep []int32) {
	for i := range n {
		ri := int(rep[i])
		if ri == i {
			continue
		}
		for j := range n {
			rj := int(rep[j])
			if j == i || rj == ri {
				continue
			}
			d[CondensedIndex(n, i, j)] = d[CondensedIndex(n, ri, rj)]
		}
	}
}
