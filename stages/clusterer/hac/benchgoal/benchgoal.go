// Package benchgoal is the row the clusterer's bench (stages/clusterer/hac/bench -json) writes
// for each of its goals and `make bench` (stages/pipeline/bench) reads into its table.
package benchgoal

// Row is one goal's figure: Go's side, the reference's, and the ratio the goal is about.
type Row struct {
	Goal   string  `json:"goal"`
	Unit   string  `json:"unit"`
	Go     float64 `json:"go"`
	Ref    string  `json:"ref"`
	RefVal float64 `json:"ref_value"`
	Ratio  float64 `json:"ratio"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
}
