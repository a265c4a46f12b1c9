package messages

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/personcluster/personcluster/stages/clusterer/hac"
)

// Bounds checked before anything is decoded or allocated from a message's numbers.
const (
	MaxFrameSide    = 16384 // pixels, either side of a frame
	MaxFacesInFrame = 256
	MaxVectorDim    = 8192
	// MaxRejectedListed bounds the rejected faces a result lists (all are counted).
	MaxRejectedListed = 10000
	// MaxMessageBytes bounds a message a stage accepts; larger ones are dead-lettered before
	// decoding. It matches the embedded server's max payload (a frame of 16384² pixels does not
	// fit: the reader's --max-width shrinks such sources).
	MaxMessageBytes = 8 << 20
)

// Box is a face box in full-frame pixels, in the original's order: top, right, bottom, left.
type Box [4]int

func (b Box) Top() int    { return b[0] }
func (b Box) Right() int  { return b[1] }
func (b Box) Bottom() int { return b[2] }
func (b Box) Left() int   { return b[3] }
func (b Box) Width() int  { return b[1] - b[3] }
func (b Box) Height() int { return b[2] - b[0] }

// IoU is the intersection over union of two boxes (0 when the union is empty).
func (b Box) IoU(o Box) float64 {
	ix := max(0, min(b.Right(), o.Right())-max(b.Left(), o.Left()))
	iy := max(0, min(b.Bottom(), o.Bottom())-max(b.Top(), o.Top()))
	inter := float64(ix * iy)
	union := float64(b.Width()*b.Height()+o.Width()*o.Height()) - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// Sampling says which frames of a source the reader publishes (the original's -S, -k and -s).
type Sampling struct {
	EveryN      int     `msgpack:"every_n,omitempty"`    // publish every N-th frame (0 or 1: all)
	TargetFPS   float64 `msgpack:"fps,omitempty"`        // or: about this many frames per second
	SkipSeconds float64 `msgpack:"skip_s,omitempty"`     // skip the first S seconds
	StopSeconds float64 `msgpack:"stop_s,omitempty"`     // stop after T seconds of video (0: to the end)
	MaxWidth    int     `msgpack:"max_width,omitempty"`  // shrink wider frames to this width (0: keep)
	JPEGQuality int     `msgpack:"jpeg_q,omitempty"`     // JPEG quality of published frames (0: default)
	MaxFrames   int     `msgpack:"max_frames,omitempty"` // stop after publishing this many (0: no limit)
}

// Params are a run's parameters. They travel with every data message so stages need no
// shared configuration store, and one deployment serves many sources with different settings.
type Params struct {
	MinFaces    int     `msgpack:"min_faces"`
	MaxFaces    int     `msgpack:"max_faces"`
	Quota       int     `msgpack:"quota"`
	Sim         float64 `msgpack:"sim"`
	MinCSize    int     `msgpack:"min_csize"`
	Method      string  `msgpack:"method"`
	Alpha       float64 `msgpack:"alpha"`
	FaceWeight  float64 `msgpack:"face_w"`
	ClothWeight float64 `msgpack:"cloth_w"`
	// CannotLink keeps two faces of one frame out of one cluster (they are two people).
	CannotLink bool `msgpack:"cannot_link,omitempty"`
	// Cut picks the cut height: "" or CutRelative is the original's max(d)·(1−Sim);
	// CutCalibrated is the face model's calibrated absolute height (Sim then only serves models
	// without a calibration).
	Cut CutKind `msgpack:"cut,omitempty"`
	// Live sources are clustered in windows of Quota accepted frames, each window forgotten
	// once its result is out, so memory stays bounded however long the stream runs.
	Live bool `msgpack:"live,omitempty"`
	// NoPeople leaves the people gallery alone: clusters are not linked to people.
	NoPeople bool `msgpack:"no_people,omitempty"`
	// Tracks clusters tracks (a face followed from one sampled frame to the next) instead of
	// single faces: each track is one person, described by the mean of its faces.
	Tracks bool `msgpack:"tracks,omitempty"`
}

// CutKind is how Params.Cut picks the cut height.
type CutKind string

// Cut kinds of Params.Cut ("" is CutRelative).
const (
	CutRelative   CutKind = "relative"
	CutCalibrated CutKind = "calibrated"
)

// CutKinds lists every cut kind.
var CutKinds = []CutKind{CutRelative, CutCalibrated}

// DefaultParams are the original's settings.
func DefaultParams() Params {
	return Params{MinFaces: 2, MaxFaces: 4, Quota: 60, Sim: 0.55, MinCSize: 3, Method: "average", FaceWeight: 1, ClothWeight: 1}
}

// TunedParams are the tuned profile's settings (the default of run and ingest): the original's
// with cannot-links, tracks and the face model's calibrated cut.
func TunedParams() Params {
	p := DefaultParams()
	p.CannotLink, p.Tracks, p.Cut = true, true, CutCalibrated
	return p
}

// Validate checks ranges.
func (p Params) Validate() error {
	var errs []error
	if p.MinFaces < 1 || p.MaxFaces < p.MinFaces || p.MaxFaces > MaxFacesInFrame {
		errs = append(errs, fmt.Errorf("faces per frame [%d,%d] not within [1,%d]", p.MinFaces, p.MaxFaces, MaxFacesInFrame))
	}
	if p.Quota < 0 {
		errs = append(errs, fmt.Errorf("quota %d < 0", p.Quota))
	}
	if !(p.Sim >= 0 && p.Sim <= 1) {
		errs = append(errs, fmt.Errorf("sim %v outside [0,1]", p.Sim))
	}
	if p.MinCSize < 1 {
		errs = append(errs, fmt.Errorf("min_csize %d < 1", p.MinCSize))
	}
	if !(p.Alpha >= 0 && p.Alpha <= 1) {
		errs = append(errs, fmt.Errorf("alpha %v outside [0,1]", p.Alpha))
	}
	if !(p.FaceWeight >= 0) || !(p.ClothWeight >= 0) || p.FaceWeight+p.ClothWeight == 0 || math.IsInf(p.FaceWeight+p.ClothWeight, 0) {
		errs = append(errs, fmt.Errorf("part weights face %v cloth %v: need non-negative, finite, not both 0", p.FaceWeight, p.ClothWeight))
	}
	if p.Cut != "" && !slices.Contains(CutKinds, p.Cut) {
		errs = append(errs, fmt.Errorf("cut %q unknown (want one of %v)", p.Cut, CutKinds))
	}
	if !hac.IsMethod(p.Method) {
		errs = append(errs, fmt.Errorf("linkage method %q unknown (want one of %v)", p.Method, hac.Methods))
	}
	return errors.Join(errs...)
}

// IngestRequest asks the reader to read a source. Published to ingest.<source>.
type IngestRequest struct {
	Source   string   `msgpack:"source"`
	URI      string   `msgpack:"uri"` // file path, rtsp:// or http(s):// URL, or a camera index
	Live     bool     `msgpack:"live,omitempty"`
	Sampling Sampling `msgpack:"sampling"`
	Params   Params   `msgpack:"params"`
	AtMillis int64    `msgpack:"at"`
}

func (*IngestRequest) MessageType() Type { return TypeIngestRequest }

func (m *IngestRequest) Validate() error {
	if err := ValidateSourceID(m.Source); err != nil {
		return err
	}
	if m.URI == "" {
		return errors.New("empty source URI")
	}
	if m.Sampling.EveryN < 0 || m.Sampling.TargetFPS < 0 || m.Sampling.SkipSeconds < 0 || m.Sampling.StopSeconds < 0 ||
		m.Sampling.MaxWidth < 0 || m.Sampling.JPEGQuality < 0 || m.Sampling.JPEGQuality > 100 || m.Sampling.MaxFrames < 0 {
		return fmt.Errorf("sampling %+v has a negative or out-of-range field", m.Sampling)
	}
	return m.Params.Validate()
}

// Frame is one sampled video frame. Published to frames.<source>.
type Frame struct {
	Source    string  `msgpack:"source"`
	Seq       int64   `msgpack:"seq"`   // 0-based position among the frames published for this source
	Index     int64   `msgpack:"index"` // 0-based frame number in the source video
	PTSMillis int64   `msgpack:"pts"`
	Width     int     `msgpack:"w"`     // of the JPEG
	Height    int     `msgpack:"h"`     // of the JPEG
	Scale     float64 `msgpack:"scale"` // JPEG size / source size (1: not resized)
	JPEG      []byte  `msgpack:"jpeg"`
	Params    Params  `msgpack:"params"`
}

func (*Frame) MessageType() Type { return TypeFrame }

func (m *Frame) Validate() error {
	if err := validFrame(m.Source, m.Seq, m.Index, m.Width, m.Height); err != nil {
		return err
	}
	if !(m.Scale > 0 && m.Scale <= 1) {
		return fmt.Errorf("scale %v outside (0,1]", m.Scale)
	}
	if len(m.JPEG) == 0 {
		return errors.New("frame has no image")
	}
	return m.Params.Validate()
}

// validFrame checks what every per-frame message says of its frame: source, position, size.
func validFrame(source string, seq, index int64, width, height int) error {
	if err := ValidateSourceID(source); err != nil {
		return err
	}
	if seq < 0 || index < 0 {
		return fmt.Errorf("negative seq %d or index %d", seq, index)
	}
	return validSize(width, height)
}

func validSize(w, h int) error {
	if w <= 0 || h <= 0 || w > MaxFrameSide || h > MaxFrameSide {
		return fmt.Errorf("frame size %dx%d outside 1..%d", w, h, MaxFrameSide)
	}
	return nil
}

// EndOfStream closes a source. The reader publishes it to frames.<source> after the last frame;
// each later stage forwards it on its own subject. Frames is the number of Frame messages
// (seq 0..Frames-1), so a consumer knows when it has seen everything whatever the order.
type EndOfStream struct {
	Source     string `msgpack:"source"`
	Frames     int64  `msgpack:"frames"`      // frames published
	FramesRead int64  `msgpack:"frames_read"` // frames decoded from the source
	Corrupt    int64  `msgpack:"corrupt"`     // frames that could not be decoded and were skipped
	Reason     string `msgpack:"reason"`      // "end", "truncated" (the file broke off), "stop", "max_frames", "cancelled", "error: ..."
	Params     Params `msgpack:"params"`
}

func (*EndOfStream) MessageType() Type { return TypeEndOfStream }

func (m *EndOfStream) Validate() error {
	if err := ValidateSourceID(m.Source); err != nil {
		return err
	}
	if m.Frames < 0 || m.FramesRead < 0 || m.Corrupt < 0 {
		return errors.New("negative frame count")
	}
	return m.Params.Validate()
}

// Face is one detected face with the crops later stages need.
type Face struct {
	Box       Box     `msgpack:"box"` // full-frame pixels, top,right,bottom,left
	Score     float32 `msgpack:"score"`
	FaceJPEG  []byte  `msgpack:"face"`     // face with a margin, for the encoder
	FaceBox   Box     `msgpack:"face_box"` // the face's box inside FaceJPEG
	ClothJPEG []byte  `msgpack:"cloth"`    // clothing crop (DESIGN step 4), for the embedder
	BodyJPEG  []byte  `msgpack:"body"`     // upper-body crop, for people to look at
}

// FrameFaces is the detector's verdict on one frame. Published to faces.<source> for every
// frame, accepted or not, so downstream stages can count frames; only accepted frames carry faces.
type FrameFaces struct {
	Source     string `msgpack:"source"`
	Seq        int64  `msgpack:"seq"`
	Index      int64  `msgpack:"index"`
	PTSMillis  int64  `msgpack:"pts"`
	Width      int    `msgpack:"w"` // full source frame
	Height     int    `msgpack:"h"`
	Accepted   bool   `msgpack:"accepted"`
	SkipReason string `msgpack:"skip,omitempty"` // why not accepted: SkipTooFew, SkipTooMany, SkipDeadLetter
	Detected   int    `msgpack:"detected"`       // faces found and kept by the gate, accepted or not
	Faces      []Face `msgpack:"faces"`
	Params     Params `msgpack:"params"`
	// Rejected are the detections the face-quality gate kept out (not counted in Detected's
	// 2–4 rule): listed so a user can see what was left out.
	Rejected []RejectedFace `msgpack:"rejected,omitempty"`
}

// RejectedFace is a detection the face-quality gate kept out of clustering, and why.
type RejectedFace struct {
	Frame     int64   `msgpack:"frame" json:"frame"` // 0-based frame number in the source video
	PTSMillis int64   `msgpack:"pts" json:"pts_ms"`
	Box       Box     `msgpack:"box" json:"box"` // full-frame pixels, top,right,bottom,left
	Score     float32 `msgpack:"score" json:"score"`
	Reason    string  `msgpack:"reason" json:"reason"` // e.g. "part_of_person", "blurred"
}

func (*FrameFaces) MessageType() Type { return TypeFrameFaces }

func (m *FrameFaces) Validate() error {
	if err := validFrame(m.Source, m.Seq, m.Index, m.Width, m.Height); err != nil {
		return err
	}
	if len(m.Faces) > MaxFacesInFrame {
		return fmt.Errorf("%d faces, more than %d", len(m.Faces), MaxFacesInFrame)
	}
	if !m.Accepted && len(m.Faces) > 0 {
		return errors.New("skipped frame carries faces")
	}
	if err := validRejected(m.Rejected); err != nil {
		return err
	}
	for i, f := range m.Faces {
		if f.Box.Width() <= 0 || f.Box.Height() <= 0 {
			return fmt.Errorf("face %d: empty box %v", i, f.Box)
		}
		if len(f.FaceJPEG) == 0 || len(f.ClothJPEG) == 0 {
			return fmt.Errorf("face %d: missing crop", i)
		}
	}
	return m.Params.Validate()
}

// FaceVectors holds one face descriptor per face of an accepted frame, in FrameFaces order.
// Published to facevec.<source> for every frame (empty for skipped ones). The encoder forwards
// the boxes and upper-body crops so the clusterer can build results from this message alone.
type FaceVectors struct {
	Source    string         `msgpack:"source"`
	Seq       int64          `msgpack:"seq"`
	Index     int64          `msgpack:"index"`
	PTSMillis int64          `msgpack:"pts"`
	Accepted  bool           `msgpack:"accepted"`
	Model     string         `msgpack:"model"`
	Vectors   [][]float32    `msgpack:"vectors"`
	Boxes     []Box          `msgpack:"boxes"`
	Bodies    [][]byte       `msgpack:"bodies"`
	Params    Params         `msgpack:"params"`
	Rejected  []RejectedFace `msgpack:"rejected,omitempty"` // the frame's, from FrameFaces
}

func (*FaceVectors) MessageType() Type { return TypeFaceVectors }

// validRejected checks a frame's rejected faces: few enough, each with a box and a reason.
func validRejected(rs []RejectedFace) error {
	if len(rs) > MaxFacesInFrame {
		return fmt.Errorf("%d rejected faces, more than %d", len(rs), MaxFacesInFrame)
	}
	for i, r := range rs {
		if r.Box.Width() <= 0 || r.Box.Height() <= 0 || r.Reason == "" {
			return fmt.Errorf("rejected face %d: empty box %v or no reason", i, r.Box)
		}
	}
	return nil
}

func (m *FaceVectors) Validate() error {
	if err := validVectors(m.Source, m.Seq, m.Accepted, m.Vectors); err != nil {
		return err
	}
	if err := validRejected(m.Rejected); err != nil {
		return err
	}
	if len(m.Boxes) != len(m.Vectors) || (len(m.Bodies) != 0 && len(m.Bodies) != len(m.Vectors)) {
		return fmt.Errorf("%d vectors, %d boxes, %d body crops", len(m.Vectors), len(m.Boxes), len(m.Bodies))
	}
	return m.Params.Validate()
}

// ClothVectors holds one clothing embedding per face of an accepted frame, in FrameFaces order.
// Published to clothvec.<source> for every frame (empty for skipped ones).
type ClothVectors struct {
	Source   string      `msgpack:"source"`
	Seq      int64       `msgpack:"seq"`
	Index    int64       `msgpack:"index"`
	Accepted bool        `msgpack:"accepted"`
	Model    string      `msgpack:"model"`
	Vectors  [][]float32 `msgpack:"vectors"`
	Params   Params      `msgpack:"params"`
}

func (*ClothVectors) MessageType() Type { return TypeClothVectors }

func (m *ClothVectors) Validate() error {
	if err := validVectors(m.Source, m.Seq, m.Accepted, m.Vectors); err != nil {
		return err
	}
	return m.Params.Validate()
}

func validVectors(source string, seq int64, accepted bool, vectors [][]float32) error {
	if err := ValidateSourceID(source); err != nil {
		return err
	}
	if seq < 0 {
		return fmt.Errorf("negative seq %d", seq)
	}
	if !accepted && len(vectors) > 0 {
		return errors.New("skipped frame carries vectors")
	}
	if len(vectors) > MaxFacesInFrame {
		return fmt.Errorf("%d vectors, more than %d", len(vectors), MaxFacesInFrame)
	}
	for i, v := range vectors {
		if len(v) == 0 || len(v) > MaxVectorDim || len(v) != len(vectors[0]) {
			return fmt.Errorf("vector %d has length %d (first has %d, max %d)", i, len(v), len(vectors[0]), MaxVectorDim)
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("vector %d is not finite", i)
			}
		}
	}
	return nil
}

// Member is one face in a cluster.
type Member struct {
	Seq       int64  `msgpack:"seq" json:"seq"`
	Frame     int64  `msgpack:"frame" json:"frame"` // 0-based frame number in the source video
	PTSMillis int64  `msgpack:"pts" json:"pts_ms"`
	Face      int    `msgpack:"face" json:"face"` // index of the face within its frame
	Box       Box    `msgpack:"box" json:"box"`
	Image     string `msgpack:"image,omitempty" json:"image,omitempty"` // object-store key of the upper-body crop
}

// Cluster is one person.
type Cluster struct {
	ID      int      `msgpack:"id" json:"id"`
	Members []Member `msgpack:"members" json:"members"`
	// Person is the gallery person the cluster was linked to (package people), "" when the
	// gallery is off or the face model has no linking cut; Name is that person's name, if any.
	Person string `msgpack:"person,omitempty" json:"person,omitempty"`
	Name   string `msgpack:"name,omitempty" json:"name,omitempty"`
	// Typical is the index in Members of the face nearest the mean of the cluster's
	// fingerprints: its most typical view (the result page's thumbnail, the montage's first
	// cell), where the largest face may be a hand the detector took for one. 0 (the first
	// member) in results from before it existed.
	Typical int `msgpack:"typical,omitempty" json:"typical"`
}

// ClusterResult is the clusterer's answer for a source. Published to results.<source> when the
// quota is reached and again at end of stream.
type ClusterResult struct {
	Source  string `msgpack:"source" json:"source"`
	Final   bool   `msgpack:"final" json:"final"`
	Partial bool   `msgpack:"partial" json:"partial"` // quota never reached, or see Reason
	// Reason says why a partial result is partial when the quota does not (the source had more
	// faces than the clusterer takes, say). Empty in results stored before it existed.
	Reason         string    `msgpack:"reason,omitempty" json:"reason,omitempty"`
	FramesSeen     int64     `msgpack:"frames_seen" json:"frames_seen"`
	FramesAccepted int64     `msgpack:"frames_accepted" json:"frames_accepted"`
	Faces          int       `msgpack:"faces" json:"faces"`
	Threshold      float64   `msgpack:"threshold" json:"threshold"`
	Clusters       []Cluster `msgpack:"clusters" json:"clusters"`
	Dropped        []Member  `msgpack:"dropped" json:"dropped"` // in clusters smaller than min_csize
	// Rejected are detections the face-quality gate kept out of clustering (at most
	// MaxRejectedListed, the first ones); RejectedCounts counts them all by reason.
	Rejected       []RejectedFace `msgpack:"rejected,omitempty" json:"rejected,omitempty"`
	RejectedCounts map[string]int `msgpack:"rejected_counts,omitempty" json:"rejected_counts,omitempty"`
	Params         Params         `msgpack:"params" json:"params"`
	FaceModel      string         `msgpack:"face_model" json:"face_model"`
	ClothModel     string         `msgpack:"cloth_model" json:"cloth_model"`
	Bucket         string         `msgpack:"bucket,omitempty" json:"bucket,omitempty"`   // object store holding the images
	Montage        string         `msgpack:"montage,omitempty" json:"montage,omitempty"` // its key of montage.png
	// Fingerprints is the object-store key of the clustered vectors (gzip JSON in the format
	// `personcluster cluster` reads), so a result can be re-clustered without recomputing them.
	Fingerprints string `msgpack:"fingerprints,omitempty" json:"fingerprints,omitempty"`
	AtMillis     int64  `msgpack:"at" json:"at_ms"`
	// Window numbers a live source's windows from 1 (its final result is its last window); 0
	// for a file source's results. WindowEnd is the seq after the window's last frame: a
	// restarted clusterer goes on from there.
	Window    int   `msgpack:"window,omitempty" json:"window,omitempty"`
	WindowEnd int64 `msgpack:"window_end,omitempty" json:"-"`
}

func (*ClusterResult) MessageType() Type { return TypeClusterResult }

func (m *ClusterResult) Validate() error {
	if err := ValidateSourceID(m.Source); err != nil {
		return err
	}
	return nil
}

// DeadLetter is a message a stage could not process, with the reason. Published to
// dead.<stage>.<source> ("_" when the source is unknown).
type DeadLetter struct {
	Stage      string              `msgpack:"stage"`
	Source     string              `msgpack:"source"`
	Subject    string              `msgpack:"subject"`
	Reason     string              `msgpack:"reason"`
	Deliveries uint64              `msgpack:"deliveries"`
	Headers    map[string][]string `msgpack:"headers"`
	Data       []byte              `msgpack:"data"`
	AtMillis   int64               `msgpack:"at"`
	// Truncated: Data is only the head of the input, which was too large to keep whole
	// (Size bytes); such a letter cannot be replayed.
	Truncated bool  `msgpack:"truncated,omitempty"`
	Size      int64 `msgpack:"size,omitempty"`
	// Forwarded: the stage told the stages downstream about the input (a frame skipped), so
	// the source goes on and its final result still comes. Without it the source cannot end
	// (see EndsSource). Letters stored before this field existed read as not forwarded.
	Forwarded bool `msgpack:"forwarded,omitempty"`
}

func (*DeadLetter) MessageType() Type { return TypeDeadLetter }

// EndsSource reports whether the dead letter stops its source: no stage downstream heard of
// the input, so the source's final result will not come, and a wait for it must end here.
func (m *DeadLetter) EndsSource() bool { return !m.Forwarded }

func (m *DeadLetter) Validate() error {
	if m.Stage == "" || m.Reason == "" {
		return errors.New("dead letter without stage or reason")
	}
	if m.Size < 0 {
		return fmt.Errorf("dead letter size %d < 0", m.Size)
	}
	return nil
}

// Source states reported by Status.
const (
	StateQueued    = "queued"
	StateReading   = "reading"
	StateDone      = "done"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
	StateProgress  = "progress"
)

// Status is a progress or state event. Published to status.<source>.
type Status struct {
	Source          string  `msgpack:"source" json:"source"`
	Stage           string  `msgpack:"stage" json:"stage"`
	State           string  `msgpack:"state" json:"state"`
	Reason          string  `msgpack:"reason,omitempty" json:"reason,omitempty"`
	FramesRead      int64   `msgpack:"frames_read" json:"frames_read"`
	FramesPublished int64   `msgpack:"frames_published" json:"frames_published"`
	FramesTotal     int64   `msgpack:"frames_total" json:"frames_total"` // estimate; 0 when unknown (live)
	FramesAccepted  int64   `msgpack:"frames_accepted" json:"frames_accepted"`
	Faces           int64   `msgpack:"faces" json:"faces"`
	Clusters        int     `msgpack:"clusters" json:"clusters"`
	ETASeconds      float64 `msgpack:"eta_s" json:"eta_s"`
	AtMillis        int64   `msgpack:"at" json:"at_ms"`
}

func (*Status) MessageType() Type { return TypeStatus }

func (m *Status) Validate() error {
	if err := ValidateSourceID(m.Source); err != nil {
		return err
	}
	if m.Stage == "" || m.State == "" {
		return errors.New("status without stage or state")
	}
	return nil
}
