package hac

import (
	"os"
	"sync/atomic"
	"time"
)

// Progress follows a clustering while it runs, for a caller that shows it
// (`personcluster cluster` on a big case takes a minute): the reading of a
// case file, the distances and the linkage each count their work up to a
// total, and another goroutine reads them with Snapshot. A nil *Progress
// counts nothing.
type Progress struct {
	step        atomic.Int32
	done, total atomic.Int64
	began       atomic.Int64 // when the step began, Unix nanoseconds
}

// ProgressState is a Progress at one moment.
type ProgressState struct {
	Step        string    // StepReading, StepDistances, StepLinkage; "" before the first
	Done, Total int64     // units of the step's work: bytes, distances, merges weighted by the clusters they look at
	Began       time.Time // when the step began
}

// The steps a Progress goes through, as Snapshot names them.
const (
	StepReading   = "reading"
	StepDistances = "distances"
	StepLinkage   = "linkage"
)

var stepNames = [...]string{"", StepReading, StepDistances, StepLinkage}

const (
	stepReading = iota + 1
	stepDistances
	stepLinkage
)

// Snapshot is the current step and how much of its work is done. The
// fields are read one after another, so Done may briefly belong to the
// step before.
func (p *Progress) Snapshot() ProgressState {
	s := p.step.Load()
	return ProgressState{Step: stepNames[s], Done: p.done.Load(), Total: p.total.Load(), Began: time.Unix(0, p.began.Load())}
}

// begin starts a step of total units of work.
func (p *Progress) begin(step int32, total int64) {
	if p == nil {
		return
	}
	p.done.Store(0)
	p.total.Store(total)
	p.began.Store(time.Now().UnixNano())
	p.step.Store(step)
}

// add counts n more units of the current step.
func (p *Progress) add(n int64) {
	if p != nil {
		p.done.Add(n)
	}
}

// linkageWork is the work of a linkage of n points in the units it counts:
// its merge k looks at the n−k clusters then active.
func linkageWork(n int) int64 { return int64(n)*int64(n+1)/2 - 1 }

// progressFile counts the bytes read from a file as reading progress; it
// is still the file to what looks for Stat (readMaybeGzip's sized read).
type progressFile struct {
	*os.File
	p *Progress
}

func (f progressFile) Read(b []byte) (int, error) {
	n, err := f.File.Read(b)
	f.p.add(int64(n))
	return n, err
}
