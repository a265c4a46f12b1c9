package hac

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"testing"
)

const oraclePath = "../../../../shared/testdata/hac/scipy_cases.json.gz"

func loadOracle(t testing.TB) *Oracle {
	t.Helper()
	if _, err := os.Stat(oraclePath); err != nil {
		t.Skipf("SciPy oracle %s not found (it lives in the shared test data, next to the repository): %v", oraclePath, err)
	}
	o, err := ReadOracleFile(oraclePath)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Cases) == 0 {
		t.Fatal("oracle has no cases")
	}
	return o
}

func relDiff(a, b float64) float64 {
	if a == b {
		return 0
	}
	return math.Abs(a-b) / math.Max(math.Abs(a), math.Abs(b))
}

// TestOracle: every SciPy case gives the same clusters, threshold and Z.
func TestOracle(t *testing.T) {
	o := loadOracle(t)
	t.Logf("oracle: %s, %d cases", o.Generator, len(o.Cases))
	// Small cases run the NN-chain on one core; parallelMin = 2 puts every
	// scan and update of the linkage on two.
	for _, par := range []int{parallelMin, 2} {
		defer func(was int) { parallelMin = was }(parallelMin)
		parallelMin = par
		for _, c := range o.Cases {
			t.Run(fmt.Sprintf("%s/parallelMin=%d", c.Name, par), func(t *testing.T) { checkOracleCase(t, c) })
		}
	}
}

func checkOracleCase(t *testing.T, c Case) {
	t.Helper()
	if c.Expected == nil {
		t.Fatal("case has no expected answer")
	}
	res, err := c.Run()
	if err != nil {
		t.Fatal(err)
	}
	exp := c.Expected
	if !reflect.DeepEqual(res.Clusters, exp.Clusters) {
		t.Errorf("clusters\n got %v\nwant %v", res.Clusters, exp.Clusters)
	}
	if r := relDiff(res.Threshold, exp.Threshold); r > 1e-9 {
		t.Errorf("threshold %v, want %v (rel diff %g)", res.Threshold, exp.Threshold, r)
	}
	if len(res.Linkage) != len(exp.Linkage) {
		t.Fatalf("linkage has %d rows, want %d", len(res.Linkage), len(exp.Linkage))
	}
	worst := 0.0
	for i, g := range res.Linkage {
		w := exp.Linkage[i]
		if g[0] != w[0] || g[1] != w[1] || g[3] != w[3] {
			t.Fatalf("linkage row %d = %v, want %v", i, g, w)
		}
		worst = math.Max(worst, relDiff(g[2], w[2]))
	}
	if worst > 1e-9 {
		t.Errorf("linkage heights differ up to %g relative", worst)
	}
	t.Logf("n=%d: %d clusters, threshold rel diff %g, worst height rel diff %g",
		len(c.Points), len(res.Clusters), relDiff(res.Threshold, exp.Threshold), worst)
}
