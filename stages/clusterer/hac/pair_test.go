package hac

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestPairRunsEveryChunkOnce: each chunk of each job runs exactly once, on
// either goroutine, and run returns only when all have.
func TestPairRunsEveryChunkOnce(t *testing.T) {
	p := newPair()
	defer p.close()
	for job := range 200 {
		chunks := 1 + job%17
		counts := make([]atomic.Int32, chunks)
		p.run(chunks, func(c int) { counts[c].Add(1) })
		for c := range counts {
			if got := counts[c].Load(); got != 1 {
				t.Fatalf("job %d chunk %d ran %d times", job, c, got)
			}
		}
	}
}

// TestPairStalls: short waits for the helper's last chunk, however many,
// are not stalls; a few waits of a time slice are.
func TestPairStalls(t *testing.T) {
	p := &pair{}
	for range 100_000 {
		p.noteWait(100 * time.Microsecond)
	}
	if p.stalled() {
		t.Fatalf("100,000 waits of 100 µs made the pair stalled (waited %v)", p.waited)
	}
	for range 4 {
		p.noteWait(6 * time.Millisecond)
	}
	if !p.stalled() {
		t.Fatalf("four waits of 6 ms did not make the pair stalled (waited %v)", p.waited)
	}
}
