package evaluate

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as aligned text tables for a terminal.
func WriteTable(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	video := r.Video
	if video == "" {
		video = "(unnamed video)"
	}
	ew.printf("%s: %d result faces, %d in no cluster (min_csize), %d in frames without truth (ignored)\n",
		video, r.ResultFaces, r.DroppedFaces, r.FacesUnannotated)
	ew.printf("matching: IoU >= %.2f, %s\n\n", r.IoU, r.Matching)

	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "detection\tframes\ttruth boxes\tresult faces\tmatched\trecall\tprecision\tF\tmean IoU")
	for _, row := range []struct {
		name string
		d    Detection
	}{{"all truth frames", r.All}, {"accepted frames", r.Accepted}} {
		d := row.d
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.4f\t%.4f\t%.4f\t%.4f\n",
			row.name, d.Frames, d.TruthBoxes, d.ResultFaces, d.Matched, d.Recall, d.Precision, d.F, d.MeanIoU)
	}
	tw.Flush()
	if r.UnclearFaces > 0 || r.FalseFaces > 0 {
		ew.printf("real faces among the result faces in truth frames: %.4f (%d on unclear faces, %d false: %v)\n",
			r.RealShare, r.UnclearFaces, r.FalseFaces, r.NonFaceKinds)
	}

	c := r.Clustering
	ew.printf("\nclustering of the %d matched faces (%d dropped, each scored as its own cluster)\n", c.Faces, c.Dropped)
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "score\tprecision\trecall\tF")
	fmt.Fprintf(tw, "pairwise\t%.4f\t%.4f\t%.4f\n", c.Pairwise.Precision, c.Pairwise.Recall, c.Pairwise.F)
	fmt.Fprintf(tw, "BCubed\t%.4f\t%.4f\t%.4f\n", c.BCubed.Precision, c.BCubed.Recall, c.BCubed.F)
	tw.Flush()
	ew.printf("NMI %.4f  ARI %.4f\n", c.NMI, c.ARI)
	ew.printf("clusters %d (in the results: %d)  identities %d (in the truth: %d)\n\n",
		c.Clusters, r.ResultClusters, c.Identities, r.TruthIdentities)

	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "identity\ttruth boxes\tmatched\tdropped\tclusters\tmain cluster\tshare")
	for _, id := range r.Identities {
		main := "-"
		if id.MainCluster != Dropped {
			main = fmt.Sprint(id.MainCluster)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%.3f\n", id.Identity, id.TruthBoxes, id.Matched, id.Dropped, id.Clusters, main, id.Share)
	}
	tw.Flush()

	if len(r.Clusters) > 0 {
		ew.printf("\n")
		tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "cluster\tfaces\tmatched\tfalse\tmain identity\tpurity")
		for _, cl := range r.Clusters {
			main := cl.MainIdentity
			if main == "" {
				main = "-"
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%.3f\n", cl.Cluster, cl.Faces, cl.Matched, cl.False, main, cl.Purity)
		}
		tw.Flush()
	}
	return ew.err
}

// errWriter keeps the first write error so the table code can stay linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
