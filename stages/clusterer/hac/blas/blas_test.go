package blas

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	gblas "gonum.org/v1/gonum/blas"
)

func TestOpenBLAS(t *testing.T) {
	if name := Name(); !strings.HasPrefix(name, "OpenBLAS") {
		t.Errorf("Name() = %q", name)
	}
	// Upper triangle of A·Aᵀ for A = [[1 2] [3 4]]: [[5 11] [· 25]].
	a := []float64{1, 2, 3, 4}
	c := []float64{0, 0, -1, 0}
	Float64().Dsyrk(gblas.Upper, gblas.NoTrans, 2, 2, 1, a, 2, 0, c, 2)
	if want := []float64{5, 11, -1, 25}; !slices.Equal(c, want) {
		t.Errorf("Dsyrk: %v, want %v (lower triangle untouched)", c, want)
	}
	prev := SetThreads(2)
	if back := SetThreads(prev); back != 2 {
		t.Errorf("SetThreads: %d threads after setting 2", back)
	}
}

// TestKernelsMatchTheCPU: unless the environment names a core, OpenBLAS
// runs kernels that use what this CPU has (Debian's 0.3.21 alone takes
// CPUs newer than itself for a Prescott).
func TestKernelsMatchTheCPU(t *testing.T) {
	if ct := os.Getenv("OPENBLAS_CORETYPE"); ct != "" {
		t.Skipf("OPENBLAS_CORETYPE=%s in the environment", ct)
	}
	core := corename()
	have, known := coreLevels[core]
	if !known {
		t.Skipf("OpenBLAS core %q is not in coreLevels", core)
	}
	if want := cpuLevel(); have < want {
		t.Errorf("OpenBLAS runs %s kernels (level %d) on a CPU of level %d", core, have, want)
	}
	t.Logf("%s, CPU level %d", Name(), cpuLevel())
}

// TestCoretypeInTheEnvironmentIsKept runs this test binary again with
// OPENBLAS_CORETYPE=Prescott: the choice is the user's, even where the CPU
// could do better.
func TestCoretypeInTheEnvironmentIsKept(t *testing.T) {
	if os.Getenv("BLAS_TEST_CHILD") == "1" {
		fmt.Print(corename())
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCoretypeInTheEnvironmentIsKept$")
	cmd.Env = append(os.Environ(), "BLAS_TEST_CHILD=1", "OPENBLAS_CORETYPE=Prescott")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if !strings.HasPrefix(string(out), "Prescott") {
		t.Errorf("with OPENBLAS_CORETYPE=Prescott the child ran %q", out)
	}
}
