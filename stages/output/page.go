package output

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/personcluster/personcluster/messages"
)

// PageLinks says where a page finds its images: on disk beside index.html (DiskLinks), or
// under a server's routes (the live UI).
type PageLinks struct {
	// Member is the URL of a member's upper-body crop ("" when it has none).
	Member func(cluster messages.Cluster, m messages.Member) string
	// Montage is the URL of montage.png ("" for none).
	Montage string
	// Back is the URL of the page listing every source ("" for none: a folder on disk).
	Back string
	// Person is the URL of a gallery person's entry (nil: none, as on disk).
	Person func(id string) string
}

// DiskLinks are the links of a result folder written by Write.
func DiskLinks() PageLinks {
	return PageLinks{
		Member: func(c messages.Cluster, m messages.Member) string {
			if m.Image == "" {
				return ""
			}
			return memberFile(c.ID, m)
		},
		Montage: "montage.png",
	}
}

// pageFace is one face as the page lists it.
type pageFace struct {
	Image string
	Frame int64
	Time  string
	Alt   string
}

// pagePerson is one section of the page: a cluster, or the person a gallery linked it to.
type pagePerson struct {
	ID          string // data-person: the person id, or the cluster id
	Label       string
	Thumb       string
	Count       int
	Gallery     string // URL of the person in the gallery ("" for none)
	First, Last string
	Faces       []pageFace // shown at once
	More        []pageFace // the rest, in an inert <template> until asked for
}

// facesShown is how many faces a person's section shows at once (two rows); the rest wait in
// an inert <template> that a button brings in. Large results stay fast: a 10,000-face page
// otherwise builds, styles and lays out 40,000 elements before it is usable.
const facesShown = 32

// timelineRow is one person's row of the appearance timeline.
type timelineRow struct {
	Label string
	Y     int
	TextY int
	Marks []int // x of each mark, one per pixel column with an appearance
}

type pageParam struct{ Name, Value string }

// pageRejected is one face the quality gate kept out, as the page lists it.
type pageRejected struct {
	Frame  int64
	Time   string
	Reason string // the gate's reason, as in results.json
	Words  string // the reason in words
	Box    string
	Score  string
}

// rejectedCount is how many faces the gate kept out for one reason.
type rejectedCount struct {
	Reason, Words string
	Count         int
}

// rejectReasons says the face-quality gate's reasons (detector.RejectReasons) in words.
var rejectReasons = map[string]string{
	"part_of_person": "part of a person beside a face (a hand, an ear, a fist at the chin)",
	"blurred":        "too blurred to describe",
}

func reasonWords(reason string) string {
	if w := rejectReasons[reason]; w != "" {
		return w
	}
	return strings.ReplaceAll(reason, "_", " ")
}

// pageData is what index.html shows; built by newPage so the template only lays it out.
type pageData struct {
	Source         string
	State          string
	FramesSeen     int64
	FramesAccepted int64
	Faces          int
	People         int
	Clustered      int
	Params         []pageParam
	Montage        string
	Back           string
	Persons        []pagePerson
	HasMore        bool // some person has faces beyond facesShown: the page carries its script
	Dropped        []pageFace
	// Rejected lists the faces the gate kept out (the result lists the first ones);
	// RejectedCounts counts all of them by reason, RejectedTotal in all.
	Rejected       []pageRejected
	RejectedCounts []rejectedCount
	RejectedTotal  int
	Timeline       struct {
		Width, Height, Left, Axis, AxisY, EndX int
		Start, End                             string
		Rows                                   []timelineRow
	}
}

const (
	timelineWidth = 720 // px of the time axis
	timelineLeft  = 110 // px for the labels
	timelineRow0  = 18  // px per row
)

// clusterPersonID is the data-person id of a cluster: the gallery's person, or its cluster id
// where the gallery is off.
func clusterPersonID(c messages.Cluster) string {
	if c.Person != "" {
		return c.Person
	}
	return strconv.Itoa(c.ID)
}

// clusterLabel is the heading of a cluster's section: the person's name, else their id.
func clusterLabel(c messages.Cluster) string {
	switch {
	case c.Name != "":
		return c.Name
	case c.Person != "":
		return "Person " + c.Person
	}
	return fmt.Sprintf("Person %d", c.ID)
}

// FormatPTS writes a time in the source as m:ss.s (h:mm:ss.s past an hour).
func FormatPTS(ms int64) string {
	if ms < 0 {
		ms = 0
	}
	tenths := ms / 100
	s, t := tenths/10, tenths%10
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d.%d", s/3600, s/60%60, s%60, t)
	}
	return fmt.Sprintf("%d:%02d.%d", s/60, s%60, t)
}

// CutDescription says which cut grouped the faces, in the words of the flags: the tuned
// profile's calibrated absolute cut, or the original's relative max(d)·(1−sim).
func CutDescription(r *messages.ClusterResult) string {
	p := r.Params
	if p.Cut == messages.CutCalibrated {
		return fmt.Sprintf("calibrated for face model %s (tuned profile): height %.4f", r.FaceModel, r.Threshold)
	}
	return fmt.Sprintf("max(d)·(1−sim), sim %g: height %.4f", p.Sim, r.Threshold)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func newPage(r *messages.ClusterResult, links PageLinks) *pageData {
	p := &pageData{Source: r.Source, FramesSeen: r.FramesSeen, FramesAccepted: r.FramesAccepted, Faces: r.Faces,
		People: len(r.Clusters), Montage: links.Montage, Back: links.Back}
	switch {
	case r.Final && r.Partial:
		p.State = fmt.Sprintf("final result (the quota of %d accepted frames was not reached)", r.Params.Quota)
	case r.Final:
		p.State = "final result"
	default:
		p.State = "intermediate result (the source is still being read)"
	}
	pr := r.Params
	p.Params = []pageParam{
		{"cut", CutDescription(r)},
		{"linkage", pr.Method},
		{"cannot-link", onOff(pr.CannotLink)},
		{"part weights", fmt.Sprintf("face %g, clothing %g", pr.FaceWeight, pr.ClothWeight)},
		{"faces per frame", fmt.Sprintf("%d–%d", pr.MinFaces, pr.MaxFaces)},
		{"quota", strconv.Itoa(pr.Quota)},
		{"min cluster size", strconv.Itoa(pr.MinCSize)},
		{"face model", r.FaceModel},
		{"clothing model", r.ClothModel},
	}
	if pr.Alpha > 0 {
		p.Params = append(p.Params, pageParam{"time blend α", fmt.Sprintf("%g", pr.Alpha)})
	}
	if pr.Live {
		p.Params = append(p.Params, pageParam{"live", "windows of the quota"})
	}

	// The timeline spans the latest appearance; without timestamps, frame numbers.
	var end int64
	usePTS := false
	for _, c := range r.Clusters {
		for _, m := range c.Members {
			if m.PTSMillis > 0 {
				usePTS = true
			}
		}
	}
	at := func(m messages.Member) int64 {
		if usePTS {
			return m.PTSMillis
		}
		return m.Frame
	}
	for _, c := range r.Clusters {
		for _, m := range c.Members {
			end = max(end, at(m))
		}
	}
	for _, m := range r.Dropped {
		end = max(end, at(m))
	}
	if usePTS {
		p.Timeline.Start, p.Timeline.End = FormatPTS(0), FormatPTS(end)
	} else {
		p.Timeline.Start, p.Timeline.End = "frame 0", "frame "+strconv.FormatInt(end, 10)
	}
	p.Timeline.Width, p.Timeline.Left = timelineLeft+timelineWidth+10, timelineLeft
	p.Timeline.Height = len(r.Clusters)*timelineRow0 + 24
	p.Timeline.Axis, p.Timeline.AxisY, p.Timeline.EndX = timelineWidth, len(r.Clusters)*timelineRow0+18, timelineLeft+timelineWidth

	for ri, c := range r.Clusters {
		person := pagePerson{ID: clusterPersonID(c), Label: clusterLabel(c), Count: len(c.Members)}
		if c.Person != "" && links.Person != nil {
			person.Gallery = links.Person(c.Person)
		}
		members := append([]messages.Member(nil), c.Members...)
		sort.SliceStable(members, func(i, j int) bool { return members[i].Frame < members[j].Frame })
		// The best view is the typical face (Cluster.Typical); where it has no crop, the
		// largest face that has one.
		bestArea := -1
		if k := c.Typical; k >= 0 && k < len(c.Members) && c.Members[k].Image != "" {
			if img := links.Member(c, c.Members[k]); img != "" {
				person.Thumb, bestArea = img, math.MaxInt
			}
		}
		row := timelineRow{Label: person.Label, Y: ri*timelineRow0 + 4, TextY: ri*timelineRow0 + 16}
		seen := map[int]bool{}
		for _, m := range members {
			img := links.Member(c, m)
			t := FormatPTS(m.PTSMillis)
			person.Faces = append(person.Faces, pageFace{Image: img, Frame: m.Frame, Time: t,
				Alt: fmt.Sprintf("%s, frame %d at %s", person.Label, m.Frame, t)})
			if a := m.Box.Width() * m.Box.Height(); img != "" && a > bestArea {
				bestArea, person.Thumb = a, img
			}
			x := timelineLeft
			if end > 0 {
				x += int(math.Round(float64(at(m)) / float64(end) * float64(timelineWidth-2)))
			}
			if !seen[x] {
				seen[x] = true
				row.Marks = append(row.Marks, x)
			}
		}
		if len(members) > 0 {
			person.First, person.Last = FormatPTS(members[0].PTSMillis), FormatPTS(members[len(members)-1].PTSMillis)
		}
		if len(person.Faces) > facesShown {
			person.Faces, person.More = person.Faces[:facesShown:facesShown], person.Faces[facesShown:]
			p.HasMore = true
		}
		p.Clustered += len(members)
		p.Persons = append(p.Persons, person)
		p.Timeline.Rows = append(p.Timeline.Rows, row)
	}
	dropped := append([]messages.Member(nil), r.Dropped...)
	sort.SliceStable(dropped, func(i, j int) bool { return dropped[i].Frame < dropped[j].Frame })
	for _, m := range dropped {
		t := FormatPTS(m.PTSMillis)
		p.Dropped = append(p.Dropped, pageFace{Frame: m.Frame, Time: t,
			Alt: fmt.Sprintf("%d×%d px at (%d, %d)", m.Box.Width(), m.Box.Height(), m.Box.Left(), m.Box.Top())})
	}
	for reason, n := range r.RejectedCounts {
		p.RejectedCounts = append(p.RejectedCounts, rejectedCount{Reason: reason, Words: reasonWords(reason), Count: n})
		p.RejectedTotal += n
	}
	sort.Slice(p.RejectedCounts, func(i, j int) bool {
		a, b := p.RejectedCounts[i], p.RejectedCounts[j]
		return a.Count > b.Count || (a.Count == b.Count && a.Reason < b.Reason)
	})
	p.RejectedTotal = max(p.RejectedTotal, len(r.Rejected))
	rejected := append([]messages.RejectedFace(nil), r.Rejected...)
	sort.SliceStable(rejected, func(i, j int) bool { return rejected[i].Frame < rejected[j].Frame })
	for _, f := range rejected {
		b := f.Box
		p.Rejected = append(p.Rejected, pageRejected{Frame: f.Frame, Time: FormatPTS(f.PTSMillis), Reason: f.Reason, Words: reasonWords(f.Reason),
			Box: fmt.Sprintf("%d×%d px at (%d, %d)", b.Width(), b.Height(), b.Left(), b.Top()), Score: fmt.Sprintf("%.2f", f.Score)})
	}
	return p
}

//go:embed index.html.tmpl
var pageSource string

var pageTemplate = template.Must(template.New("index").Parse(pageSource))

// PageScriptHash is the Content-Security-Policy source of index.html's one inline script
// ('sha256-…'): a server that sends the page with a policy allows it by this hash.
var PageScriptHash = func() string {
	_, rest, ok := strings.Cut(pageSource, "<script>")
	script, _, ok2 := strings.Cut(rest, "</script>")
	if !ok || !ok2 {
		panic("output: index.html.tmpl has no inline script")
	}
	sum := sha256.Sum256([]byte(script))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// WritePage renders a result's index.html: a summary, one section per person, an appearance
// timeline, the dropped faces and those the face-quality gate rejected, with images found through links. It needs no network.
func WritePage(w io.Writer, r *messages.ClusterResult, links PageLinks) error {
	if err := pageTemplate.Execute(w, newPage(r, links)); err != nil {
		return fmt.Errorf("output: rendering index.html: %w", err)
	}
	return nil
}
