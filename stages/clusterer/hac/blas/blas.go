// Package blas links OpenBLAS (Debian's libopenblas-dev) and hands hac its
// double-precision routines through gonum's netlib binding. It is the only
// cgo in the clusterer: the clustering maths stays pure Go, and building
// with the noblas tag (or without cgo) leaves hac on gonum's Go BLAS.
package blas

/*
#cgo LDFLAGS: -lopenblas
char* openblas_get_config(void);
char* openblas_get_corename(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
*/
import "C"

import (
	"os"
	"strconv"
	"strings"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/netlib/blas/netlib"
)

// Linking OpenBLAS makes it the BLAS of OpenCV and dlib in this process too
// (the executable's own libraries come first in symbol lookup). Their calls
// come from stages that already run one worker per core, and hac runs one
// single-threaded call per core itself, so OpenBLAS runs single-threaded
// unless OPENBLAS_NUM_THREADS says otherwise: its idle threads would spin on
// the cores the stages need.
func init() {
	if os.Getenv("OPENBLAS_NUM_THREADS") == "" && os.Getenv("OMP_NUM_THREADS") == "" {
		C.openblas_set_num_threads(1)
	}
}

// Float64 is OpenBLAS's double-precision BLAS.
func Float64() gblas.Float64 { return netlib.Implementation{} }

// SetThreads sets OpenBLAS's thread count for the whole process and
// returns the previous one. hac calls it with 1 while it runs one BLAS call
// per core itself: OpenBLAS's idle workers otherwise spin on the cores the
// distance conversion needs.
func SetThreads(n int) (prev int) {
	prev = int(C.openblas_get_num_threads())
	C.openblas_set_num_threads(C.int(n))
	return prev
}

// Name describes the library as it runs here: its build, the kernel it
// chose for this CPU and its thread count, e.g. "OpenBLAS 0.3.21 (Haswell, 2 threads)".
func Name() string {
	cfg := strings.Fields(C.GoString(C.openblas_get_config()))
	ver := "OpenBLAS"
	if len(cfg) >= 2 {
		ver = cfg[0] + " " + cfg[1]
	}
	return ver + " (" + C.GoString(C.openblas_get_corename()) + ", " +
		strconv.Itoa(int(C.openblas_get_num_threads())) + " threads)"
}
