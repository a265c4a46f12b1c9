package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/evaluate"
	"github.com/personcluster/personcluster/stages/output"
)

const evalUsage = `usage: personcluster eval --truth TRUTH.json [--iou 0.5] [--json] RESULTS.json|DIR

Scores a result (DIR/<source>/results.json of 'personcluster run --out DIR', or a folder holding
one) against ground truth (testdata/video/*.truth.json): detection recall and precision over
all truth frames and over the accepted ones, then pairwise, BCubed, NMI and ARI scores of the
clustering of the matched faces. Faces match truth boxes of the same frame one-to-one, greedily
by IoU. Flags may come before or after the results path.
`

func cmdEval(args []string) error { return runEval(args, os.Stdout) }

func runEval(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), evalUsage)
		fs.PrintDefaults()
	}
	truthPath := fs.String("truth", "", "ground-truth file (required)")
	iou := fs.Float64("iou", evaluate.DefaultIoU, "IoU a result face needs with a truth box to match it, in (0,1]")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	paths := fs.Args()
	if *truthPath == "" || len(paths) != 1 {
		fs.Usage()
		return errUsage
	}
	if !(*iou > 0 && *iou <= 1) {
		return fmt.Errorf("evaluate: --iou %v outside (0,1]", *iou)
	}
	truth, err := evaluate.LoadTruth(*truthPath)
	if err != nil {
		return err
	}
	faces, err := evaluate.LoadResults(paths[0])
	if err != nil {
		return err
	}
	report, err := evaluate.Evaluate(truth, faces, evaluate.Options{IoU: *iou})
	if err != nil {
		return err
	}
	if *asJSON {
		return evaluate.WriteJSON(stdout, report)
	}
	return evaluate.WriteTable(stdout, report)
}

// evalFaces turns results.json face records into what evaluate scores.
func evalFaces(recs []output.FaceRecord) []evaluate.Face {
	faces := make([]evaluate.Face, len(recs))
	for i, r := range recs {
		faces[i] = evaluate.Face{Frame: r.Frame, Box: evaluate.Box(r.Box), Cluster: r.Cluster}
	}
	return faces
}

// evalResult lists the faces of a cluster result, members and dropped ones (cluster −1), for
// evaluate.Evaluate.
func evalResult(r *messages.ClusterResult) []evaluate.Face { return evalFaces(output.FaceRecords(r)) }

// printEvaluation scores a result of run --truth as eval scores its results.json.
func printEvaluation(w io.Writer, truth *evaluate.Truth, r *messages.ClusterResult, asJSON bool) error {
	report, err := evaluate.Evaluate(truth, evalResult(r), evaluate.Options{})
	if err != nil {
		return err
	}
	if asJSON {
		return evaluate.WriteJSON(w, report)
	}
	fmt.Fprintln(w)
	return evaluate.WriteTable(w, report)
}
