package hac

import (
	"syscall"
	"unsafe"
)

// hugePageMin: condensed arrays from this size on ask for transparent huge
// pages. The linkage reads them a column at a time, one element per row:
// with 4 KiB pages nearly every read misses the TLB, with 2 MiB pages the
// whole matrix of n = 10,000 fits it; the first touch faults 512× less too.
// On a VM whose balloon reports free pages to the host, a huge page's first
// touch costs 3–5 ms (the host backs the reported block again); small pages
// cut the distances' kernel time at n = 10,000 (1.1 → 0.3 CPU-s) only while
// the guest has backed small blocks to spare, and at n = 50,000 the whole
// `personcluster cluster` took 144 s against 54 s with huge pages.
const hugePageMin = 64 << 20

// newCondensed returns a zeroed condensed array for n points, advised as
// huge pages where the kernel allows it (THP "madvise" or "always"); the
// advice is only a hint, so failure is ignored.
func newCondensed(n int) []float64 {
	d := make([]float64, CondensedLen(n))
	if len(d)*8 >= hugePageMin {
		adviseHuge(unsafe.Slice((*byte)(unsafe.Pointer(&d[0])), len(d)*8))
	}
	return d
}

// newReadBuffer returns an empty buffer of capacity size for a file's
// text; a big one is advised as huge pages, so filling it faults 512× less.
func newReadBuffer(size int) []byte {
	b := make([]byte, 0, size)
	if size >= hugePageMin {
		adviseHuge(b[:size])
	}
	return b
}

func adviseHuge(b []byte) { _ = syscall.Madvise(b, 14) } // MADV_HUGEPAGE
