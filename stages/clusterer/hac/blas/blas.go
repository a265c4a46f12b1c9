// Package blas links OpenBLAS (Debian's libopenblas-dev) and hands hac its
// double-precision routines through gonum's netlib binding. It is the only
// cgo in the clusterer: the clustering maths stays pure Go, and building
// with the noblas tag (or without cgo) leaves hac on gonum's Go BLAS.
package blas

/*
#cgo LDFLAGS: -lopenblas -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

char* openblas_get_config(void);
char* openblas_get_corename(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);

// reselect_kernels has a DYNAMIC_ARCH OpenBLAS (Debian's) choose its
// kernels again, under OPENBLAS_CORETYPE=coretype, through its own
// gotoblas_dynamic_quit/init. They are looked up at run time: a build of
// OpenBLAS for one CPU has neither, and then nothing changes (returns 0).
static int reselect_kernels(const char *coretype) {
	void (*quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
	void (*init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
	if (quit == NULL || init == NULL) return 0;
	setenv("OPENBLAS_CORETYPE", coretype, 1);
	quit();
	init();
	unsetenv("OPENBLAS_CORETYPE");
	return 1;
}
*/
import "C"

import (
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"

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
	upgradeKernels()
}

// isaLevel ranks the vector instructions a CPU offers, or that OpenBLAS's
// kernels for a core use.
type isaLevel int

const (
	levelSSE isaLevel = iota + 1
	levelAVX
	levelAVX2    // with FMA
	levelAVX512  // F, CD, BW, DQ, VL: OpenBLAS's SkylakeX kernels
	levelAVX512B // and BF16: its Cooperlake kernels (same DGEMM, bf16 GEMM added)
)

// coreLevels is the instruction set of the kernels behind each core name a
// DYNAMIC_ARCH OpenBLAS 0.3.x reports. Names not listed are left alone.
var coreLevels = map[string]isaLevel{
	"Katmai": levelSSE, "Coppermine": levelSSE, "Northwood": levelSSE, "Prescott": levelSSE,
	"Banias": levelSSE, "Atom": levelSSE, "Core2": levelSSE, "Penryn": levelSSE,
	"Dunnington": levelSSE, "Nehalem": levelSSE, "Athlon": levelSSE, "Opteron": levelSSE,
	"Opteron_SSE3": levelSSE, "Barcelona": levelSSE, "Nano": levelSSE, "Bobcat": levelSSE,
	"Sandybridge": levelAVX, "Bulldozer": levelAVX, "Piledriver": levelAVX, "Steamroller": levelAVX,
	"Excavator": levelAVX2, "Haswell": levelAVX2, "Zen": levelAVX2,
	"SkylakeX": levelAVX512, "Cooperlake": levelAVX512B,
}

// levelCores is the core OpenBLAS is asked for at each level.
var levelCores = map[isaLevel]string{
	levelAVX: "Sandybridge", levelAVX2: "Haswell", levelAVX512: "SkylakeX", levelAVX512B: "Cooperlake",
}

// cpuLevel is what this CPU and its OS support (x/sys/cpu checks that the
// OS saves the vector registers too).
func cpuLevel() isaLevel {
	x := cpu.X86
	switch {
	case x.HasAVX512F && x.HasAVX512CD && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL && x.HasAVX512BF16:
		return levelAVX512B
	case x.HasAVX512F && x.HasAVX512CD && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL:
		return levelAVX512
	case x.HasAVX2 && x.HasFMA:
		return levelAVX2
	case x.HasAVX:
		return levelAVX
	}
	return levelSSE
}

// upgradeKernels moves OpenBLAS to the best kernels this CPU runs when it
// chose weaker ones by itself. OpenBLAS picks by CPU model, and a model
// newer than the library falls back to a generic core: Debian 12's 0.3.21
// takes an Emerald Rapids Xeon for a Prescott and runs DGEMM on SSE3 at a
// quarter of what its SkylakeX kernels reach there (15.8 against 69 GFLOP
// per CPU-second). Newer OpenBLAS releases choose by features as done here.
// An OPENBLAS_CORETYPE in the environment is the user's choice and is kept.
func upgradeKernels() {
	if os.Getenv("OPENBLAS_CORETYPE") != "" {
		return
	}
	current := corename()
	have, known := coreLevels[current]
	want := cpuLevel()
	if !known || want <= have {
		return
	}
	name := C.CString(levelCores[want])
	defer C.free(unsafe.Pointer(name))
	C.reselect_kernels(name)
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
	return ver + " (" + corename() + ", " +
		strconv.Itoa(int(C.openblas_get_num_threads())) + " threads)"
}

// corename is the core whose kernels OpenBLAS runs, e.g. "Haswell".
func corename() string { return C.GoString(C.openblas_get_corename()) }
