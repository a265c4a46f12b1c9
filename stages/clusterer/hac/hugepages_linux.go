package hac

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"unsafe"
)

// hugePageMin: condensed arrays from this size on ask for transparent huge
// pages. The linkage reads them a column at a time, one element per row:
// with 4 KiB pages nearly every read misses the TLB, with 2 MiB pages the
// whole matrix of n = 10,000 fits it; the first touch faults 512× less too.
const hugePageMin = 64 << 20

// newCondensed returns a zeroed condensed array for n points, advised as
// huge pages where they are cheap (see hugePagesCheap) and the kernel
// allows them (THP "madvise" or "always"); the advice is only a hint, so
// failure is ignored.
func newCondensed(n int) []float64 {
	d := make([]float64, CondensedLen(n))
	if len(d)*8 >= hugePageMin {
		advisePages(unsafe.Slice((*byte)(unsafe.Pointer(&d[0])), len(d)*8))
	}
	return d
}

// newReadBuffer returns an empty buffer of capacity size for a file's
// text; a big one is advised like the condensed array.
func newReadBuffer(size int) []byte {
	b := make([]byte, 0, size)
	if size >= hugePageMin {
		advisePages(b[:size])
	}
	return b
}

// advisePages asks for huge pages over b where they are cheap, and for
// small ones where they are not (THP "always" would give huge ones).
func advisePages(b []byte) {
	const madvHugepage, madvNoHugepage = 14, 15
	if hugePagesCheap() {
		_ = syscall.Madvise(b, madvHugepage)
	} else {
		_ = syscall.Madvise(b, madvNoHugepage)
	}
}

// CondensedPages says which pages a large condensed array gets here, and why.
func CondensedPages() string {
	if hugePagesCheap() {
		return "2 MiB (transparent huge pages, where the kernel allows them)"
	}
	return "4 KiB (this VM's balloon reports free pages to the host: huge pages fault in slowly)"
}

// hugePagesCheap is false on a VM whose balloon reports free pages to the
// host (VIRTIO_BALLOON_F_REPORTING). The host then discards the memory of
// every free 2 MiB block the guest reports, and a huge page is made of
// exactly such a block: its first touch faults the whole block back in at
// the host, 3–7 ms instead of ~0.1 ms. Small pages come from the smaller
// free blocks first, which are never reported. Measured on such a VM
// (Firecracker, n = 10,000): the distances' kernel time fell from 0.4–1.3
// to 0.26–0.28 CPU-s with small pages, the linkage took 0.1–0.2 s longer
// (TLB misses), `personcluster cluster` on .npy 3.64 → 3.42 CPU-s.
var hugePagesCheap = sync.OnceValue(func() bool { return !balloonReportsFreePages("/sys") })

// balloonReportsFreePages looks under sysfs root for a virtio device bound
// to virtio_balloon that negotiated free page reporting (feature bit 5 of
// its features string, one character per bit).
func balloonReportsFreePages(root string) bool {
	const reportingBit = 5
	devs, _ := filepath.Glob(filepath.Join(root, "bus/virtio/drivers/virtio_balloon/virtio*"))
	for _, dev := range devs {
		f, err := os.ReadFile(filepath.Join(dev, "features"))
		if err == nil && len(f) > reportingBit && f[reportingBit] == '1' {
			return true
		}
	}
	return false
}
