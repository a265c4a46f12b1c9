package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/personcluster/personcluster/stages/clusterer/hac"
)

func cmdCluster(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	method := fs.String("method", "", "override the file's linkage method")
	metric := fs.String("metric", "", "override the file's metric (euclidean, cosine)")
	sim := fs.Float64("sim", -1, "override the file's sim")
	minCSize := fs.Int("min-csize", 0, "override the file's min_csize")
	alpha := fs.Float64("alpha", -1, "override the file's timestamp weight")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: personcluster cluster [flags] FILE(.json|.json.gz|.npy)")
		return errUsage
	}
	prog := new(hac.Progress)
	stop := clusterProgress(os.Stderr, prog, isTerminal(os.Stderr))
	defer stop()
	c, err := hac.ReadCaseFileProgress(fs.Arg(0), prog)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["method"] {
		c.Method = *method
	}
	if set["metric"] {
		c.Metric = *metric
	}
	if set["sim"] {
		c.Sim = *sim
	}
	if set["min-csize"] {
		c.MinCSize = *minCSize
	}
	if set["alpha"] {
		c.Alpha = *alpha
	}
	r, err := c.RunProgress(prog)
	stop()
	if err != nil {
		return err
	}
	return hac.WriteOutput(os.Stdout, r)
}
