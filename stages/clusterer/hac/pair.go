package hac

import (
	"runtime"
	"sync/atomic"
	"time"
)

// pair shares a job of a few chunks between the caller's goroutine and one
// helper that spins between jobs. The NN-chain linkage hands it one scan or
// one update per step: some ten microseconds of work at n = 10,000, too
// little to wake a sleeping goroutine for each time, enough to share
// between two cores. Both take chunks from one counter, so when the helper is not
// running (a busy machine) the caller simply does them all; the caller only
// waits for a chunk the helper has already taken, and where that adds up
// (stalled) the linkage goes on alone.
type pair struct {
	job      func(chunk int)
	next     atomic.Uint64 // tag<<32 | chunks<<16 | next chunk to take
	finished atomic.Int64  // chunks finished of the current job
	closed   atomic.Bool
	parked   atomic.Bool   // the helper waits on wake
	wake     chan struct{} // one token wakes the helper
	tag      uint64
	waited   time.Duration // the caller's waits for the helper, roughly
}

// maxChunks bounds a job's chunks (they share 16 bits of next).
const maxChunks = 1 << 15

func newPair() *pair {
	p := &pair{wake: make(chan struct{}, 1)}
	go p.help()
	return p
}

// take claims the next chunk of the current job, if any is left.
func (p *pair) take() (int, bool) {
	for {
		w := p.next.Load()
		chunk, n := int(w&0xffff), int(w>>16&0xffff)
		if chunk >= n {
			return 0, false
		}
		if p.next.CompareAndSwap(w, w+1) {
			return chunk, true
		}
	}
}

// helperSpins: the helper spins this many times without work (some tens of
// microseconds; the linkage posts its next job within one) before it parks
// until run wakes it, so it burns no core while the caller is descheduled.
const helperSpins = 1 << 13

func (p *pair) help() {
	for spins := 1; !p.closed.Load(); spins++ {
		if chunk, ok := p.take(); ok {
			// The job cannot change under us: run waits for this chunk.
			p.job(chunk)
			p.finished.Add(1)
			spins = 0
			continue
		}
		if spins%64 == 0 {
			runtime.Gosched()
		}
		if spins >= helperSpins {
			p.parked.Store(true)
			// Work posted before parked was set is seen here; work posted
			// after sees parked and wakes us (a stale wake-up is harmless).
			if !p.hasWork() && !p.closed.Load() {
				<-p.wake
			}
			p.parked.Store(false)
			spins = 0
		}
	}
}

// hasWork reports whether the current job has chunks left to take.
func (p *pair) hasWork() bool {
	w := p.next.Load()
	return w&0xffff < w>>16&0xffff
}

// wakeHelper wakes the helper if it is parked.
func (p *pair) wakeHelper() {
	if p.parked.Load() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// run calls job(0), …, job(chunks-1), on both goroutines, and returns when
// all have returned. chunks ≤ maxChunks.
func (p *pair) run(chunks int, job func(chunk int)) {
	p.job = job
	p.finished.Store(0)
	p.tag++
	p.next.Store(p.tag<<32 | uint64(chunks)<<16) // publishes job to the helper
	p.wakeHelper()
	for {
		chunk, ok := p.take()
		if !ok {
			break
		}
		job(chunk)
		p.finished.Add(1)
	}
	var since time.Time
	for spins := 1; p.finished.Load() != int64(chunks); spins++ {
		if spins%64 == 0 {
			runtime.Gosched()
		}
		if spins == 1024 {
			since = time.Now()
		}
	}
	if !since.IsZero() {
		p.noteWait(time.Since(since))
	}
}

// noteWait counts a wait for the helper's last chunk. Such waits are normal
// (a chunk is tens of microseconds; counting them all turned the pair off
// within a second at n = 10,000 and doubled the linkage's time); only one
// as long as a scheduler time slice, the helper's thread descheduled, is a
// stall.
func (p *pair) noteWait(w time.Duration) {
	if w > stallWait {
		p.waited += w
	}
}

// stallWait: a wait for the helper longer than this counts as a stall.
const stallWait = 500 * time.Microsecond

// maxPairWait: once the caller has waited this long in all in stalls (the
// helper's thread descheduled on a busy machine), the pair is slower than
// one goroutine and stalled reports so.
const maxPairWait = 20 * time.Millisecond

// stalled reports whether the caller has waited too long for the helper.
func (p *pair) stalled() bool { return p.waited > maxPairWait }

// close stops the helper; the pair is not used after.
func (p *pair) close() {
	p.closed.Store(true)
	p.wakeHelper()
}
