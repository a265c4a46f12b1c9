package embedder

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/internal/parallel"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// Config tunes the stage. The stage loop's own batch (messages pulled at once, --batch) and
// batch wait (--batch-wait) decide how many messages one Process call sees; MaxBatch and
// MaxWait decide how the crops of those calls are grouped into inferences.
type Config struct {
	// MaxBatch is the most crops one inference takes (default 32). The crops of one Process
	// call, and of concurrent calls from several workers, are packed into inferences of
	// MaxBatch crops; only the last of a run is smaller.
	MaxBatch int
	// MaxWait bounds how long a batch smaller than MaxBatch waits for crops from another
	// worker's Process call that is still decoding (default 10ms). It never waits when no other
	// call is under way, so a single worker adds no latency.
	MaxWait time.Duration
	// Workers decode and preprocess the crops of a Process call in parallel (default
	// GOMAXPROCS, at most 8).
	Workers int
	// Inferences is how many inferences run at once (default 1). On a CPU, two inferences of
	// one intra-op thread each embed more crops per CPU-second than one inference on two
	// threads (the model's operators are small; its threads wait for each other); the next
	// inference gathers crops while every lane is busy.
	Inferences int
}

// DefaultMaxBatch and DefaultMaxWait are Config's defaults.
const (
	DefaultMaxBatch = 32
	DefaultMaxWait  = 10 * time.Millisecond
)

// setDefaults fills zero values; Validate then refuses negative ones.
func (c *Config) setDefaults() {
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.Workers == 0 {
		c.Workers = min(runtime.GOMAXPROCS(0), 8)
	}
	if c.Inferences == 0 {
		c.Inferences = 1
	}
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	if c.MaxBatch < 0 || c.MaxBatch > 4096 {
		return fmt.Errorf("embedder: max batch %d outside 0..4096", c.MaxBatch)
	}
	if c.MaxWait < 0 || c.Workers < 0 {
		return errors.New("embedder: max wait and workers must not be negative")
	}
	if c.Inferences < 0 || c.Inferences > 64 {
		return fmt.Errorf("embedder: inferences %d outside 0..64", c.Inferences)
	}
	return nil
}

// Stage is the embedder's stage.Processor.
type Stage struct {
	model *Model
	cfg   Config
	per   int // float32 values per image

	start     sync.Once
	closeOnce sync.Once
	closeErr  error
	in        chan *request
	quit      chan struct{}
	exited    chan struct{}
	preparing atomic.Int64 // Process calls decoding crops that the batcher has not received yet

	inferences, images atomic.Int64
	// doneMu guards the requests' vecs, err and left, which concurrent inferences fill.
	doneMu sync.Mutex

	bufMu sync.Mutex
	bufs  [][]float32 // reusable blobs
}

// New wraps a model with the default Config; the stage owns the model and closes it.
func New(model *Model) *Stage {
	s, _ := NewWithConfig(model, Config{})
	return s
}

// NewWithConfig wraps a model; the stage owns the model and closes it (also on error).
func NewWithConfig(model *Model, cfg Config) (*Stage, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		model.Close()
		return nil, err
	}
	if fb := model.FixedBatch(); fb > 0 && cfg.MaxBatch > fb && cfg.MaxBatch%fb != 0 {
		cfg.MaxBatch -= cfg.MaxBatch % fb // whole chunks of a fixed-batch model
	}
	return &Stage{model: model, cfg: cfg, per: model.ImageLen(), in: make(chan *request),
		quit: make(chan struct{}), exited: make(chan struct{})}, nil
}

// Model returns the stage's model.
func (s *Stage) Model() *Model { return s.model }

// Config returns the stage's settings, defaults filled.
func (s *Stage) Config() Config { return s.cfg }

// Stats counts the stage's inferences and the crops they took (Images/Inferences is the mean
// batch size a GPU sees).
type Stats struct{ Inferences, Images int64 }

// Stats returns the counts so far.
func (s *Stage) Stats() Stats { return Stats{Inferences: s.inferences.Load(), Images: s.images.Load()} }

// request is the crops of one Process call, handed to the batcher.
type request struct {
	blob []float32 // n preprocessed images
	n    int
	// Written by the inferences (under Stage.doneMu), read by the caller after done is closed.
	vecs [][]float32
	err  error
	left int
	done chan struct{}
}

// job is one crop to decode: input index, face index.
type job struct{ input, face int }

// Process embeds every clothing crop of the batch. A crop that cannot be decoded fails its own
// input (stage.ErrPermanent: dead letter); the other inputs go on. The crops are preprocessed
// in parallel and handed to the batcher, which runs them in inferences of up to MaxBatch crops,
// together with the crops of other workers' concurrent calls.
func (s *Stage) Process(ctx context.Context, batch []*stage.Input) []stage.Result {
	out, items := stage.Split[*messages.FrameFaces](batch, route)
	var jobs []job
	for _, it := range items {
		for j := range it.Message.Faces {
			jobs = append(jobs, job{it.Index, j})
		}
	}
	var vecs [][]float32
	if len(jobs) > 0 {
		s.preparing.Add(1)
		var err error
		vecs, jobs, err = s.embed(ctx, batch, jobs, out)
		if err != nil {
			for _, jb := range jobs {
				if out[jb.input].Err == nil {
					out[jb.input].Err = err
				}
			}
		}
	}
	// Vectors of the surviving jobs, in order; each FrameFaces input gets its message.
	next := 0
	for _, it := range items {
		i, m := it.Index, it.Message
		if out[i].Err != nil {
			// Skip this input's vectors, if any were computed.
			for next < len(jobs) && jobs[next].input == i {
				next++
			}
			continue
		}
		cv := &messages.ClothVectors{Source: m.Source, Seq: m.Seq, Index: m.Index, Accepted: m.Accepted, Model: s.model.Name(), Params: m.Params}
		if len(m.Faces) > 0 {
			cv.Vectors = vecs[next : next+len(m.Faces) : next+len(m.Faces)]
			next += len(m.Faces)
		}
		out[i].Outputs = []stage.Output{route.Output(m.Source, m.Seq, cv)}
	}
	return out
}

// route: FrameFaces in, ClothVectors and end-of-stream markers out on clothvec.<source>.
var route = stage.Route{Stage: StageName, Next: messages.SubjectClothVec}

// embed preprocesses the jobs' crops, drops the inputs whose crops fail (setting their error in
// out), runs the rest through the batcher and returns their vectors and the surviving jobs. The
// caller has counted itself in s.preparing; embed settles that count.
func (s *Stage) embed(ctx context.Context, batch []*stage.Input, jobs []job, out []stage.Result) ([][]float32, []job, error) {
	submitted := false
	defer func() {
		if !submitted {
			s.preparing.Add(-1)
		}
	}()
	blob := s.getBuf(len(jobs) * s.per)
	defer func() { s.putBuf(blob) }() // a closure: blob is cleared while the batcher still holds it
	errs := s.preprocessAll(batch, jobs, blob)
	// Drop every job of an input with a failed crop, compacting the blob.
	for k, err := range errs {
		if err != nil && out[jobs[k].input].Err == nil {
			m := batch[jobs[k].input].Message.(*messages.FrameFaces)
			out[jobs[k].input].Err = stage.Permanent(fmt.Errorf("%w (frame %d face %d of %s)", err, m.Index, jobs[k].face, m.Source))
		}
	}
	kept := jobs[:0:0]
	for k, jb := range jobs {
		if out[jb.input].Err != nil {
			continue
		}
		if len(kept) != k {
			copy(blob[len(kept)*s.per:(len(kept)+1)*s.per], blob[k*s.per:(k+1)*s.per])
		}
		kept = append(kept, jb)
	}
	if len(kept) == 0 {
		return nil, nil, nil
	}
	req := &request{blob: blob[:len(kept)*s.per], n: len(kept), done: make(chan struct{})}
	s.start.Do(func() { go s.batcher() })
	select {
	case s.in <- req:
		submitted = true // the batcher took the count over
	case <-s.quit:
		return nil, kept, ErrClosed
	case <-ctx.Done():
		return nil, kept, fmt.Errorf("embedder: %w", ctx.Err())
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		// The batcher still holds req (and its blob); it finishes with it on its own.
		blob = nil
		return nil, kept, fmt.Errorf("embedder: %w", ctx.Err())
	}
	if req.err != nil {
		if errors.Is(req.err, ErrOutputShape) {
			return nil, kept, stage.Permanent(req.err)
		}
		return nil, kept, req.err
	}
	return req.vecs, kept, nil
}

// preprocessAll decodes and preprocesses every job's crop into its slot of blob, in parallel.
func (s *Stage) preprocessAll(batch []*stage.Input, jobs []job, blob []float32) []error {
	errs := make([]error, len(jobs))
	work := func(k int) {
		jb := jobs[k]
		face := batch[jb.input].Message.(*messages.FrameFaces).Faces[jb.face]
		errs[k] = s.preprocessJPEG(blob[k*s.per:(k+1)*s.per], face.ClothJPEG)
	}
	parallel.Each(len(jobs), s.cfg.Workers, func() func(int) { return work })
	return errs
}

func (s *Stage) preprocessJPEG(dst []float32, jpeg []byte) error {
	if len(jpeg) == 0 {
		return fmt.Errorf("%w: no bytes", ErrCrop)
	}
	crop, err := vision.DecodeJPEG(jpeg, messages.MaxFrameSide)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCrop, err)
	}
	defer crop.Close()
	return s.model.Preprocess(dst, crop)
}

// pending is a request in the batcher's queue: off images of it have gone to inferences.
type pending struct {
	req *request
	off int
}

// part is n images of a request, from its image off, in an inference.
type part struct {
	req    *request
	off, n int
}

// batcher packs the requests' images into inferences of up to MaxBatch, Inferences of them at
// once. It runs a full batch at once; an incomplete one waits up to MaxWait, and only while
// another Process call is still preparing crops. While every inference lane is busy, crops
// keep joining the queue, so the next inference is as large as the queue allows.
func (s *Stage) batcher() {
	defer close(s.exited)
	lanes := make(chan int, s.cfg.Inferences)
	for i := range s.cfg.Inferences {
		lanes <- i
	}
	bufs := make([][]float32, s.cfg.Inferences) // each lane's input when it mixes requests
	var running sync.WaitGroup
	var queue []pending
	queued := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	take := func(r *request) {
		s.preparing.Add(-1)
		r.left = r.n
		r.vecs = make([][]float32, r.n)
		queue = append(queue, pending{req: r})
		queued += r.n
	}
	// fail ends the queued requests once the running inferences are done with them.
	fail := func() {
		running.Wait()
		for _, p := range queue {
			p.req.err = ErrClosed
			close(p.req.done)
		}
	}
	for {
		if queued == 0 {
			select {
			case r := <-s.in:
				take(r)
			case <-s.quit:
				fail()
				return
			}
		}
		var lane int
	free:
		for {
			select {
			case lane = <-lanes:
				break free
			case r := <-s.in:
				take(r)
			case <-s.quit:
				fail()
				return
			}
		}
		deadline := time.Now().Add(s.cfg.MaxWait)
	gather:
		for queued < s.cfg.MaxBatch {
			select {
			case r := <-s.in:
				take(r)
				continue
			default:
			}
			wait := time.Until(deadline)
			if s.preparing.Load() <= 0 || wait <= 0 {
				break
			}
			timer.Reset(wait)
			select {
			case r := <-s.in:
				take(r)
			case <-timer.C:
				break gather
			case <-s.quit:
				timer.Stop()
				fail()
				return
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		select {
		case <-s.quit:
			fail()
			return
		default:
		}
		k := min(queued, s.cfg.MaxBatch)
		var input []float32
		var parts []part
		input, parts, queue, bufs[lane] = s.takeBatch(queue, k, bufs[lane])
		queued -= k
		running.Add(1)
		go func() {
			defer running.Done()
			s.infer(input, k, parts)
			lanes <- lane
		}()
	}
}

// takeBatch takes the first k queued images for an inference: their input (one request's
// contiguous images as they are, a mix copied into buf) and the requests' parts, and returns
// the queue without the requests whose images have all gone.
func (s *Stage) takeBatch(queue []pending, k int, buf []float32) ([]float32, []part, []pending, []float32) {
	var input []float32
	mixed := queue[0].req.n-queue[0].off < k
	if !mixed {
		input = queue[0].req.blob[queue[0].off*s.per : (queue[0].off+k)*s.per]
	} else {
		if cap(buf) < k*s.per {
			buf = make([]float32, k*s.per)
		}
		input = buf[:0]
	}
	var parts []part
	for need := k; need > 0; {
		p := &queue[0]
		c := min(need, p.req.n-p.off)
		if mixed {
			input = append(input, p.req.blob[p.off*s.per:(p.off+c)*s.per]...)
		}
		parts = append(parts, part{p.req, p.off, c})
		p.off += c
		need -= c
		if p.off == p.req.n {
			queue = queue[1:]
		}
	}
	if len(queue) == 0 {
		queue = nil // let the backing array go
	}
	return input, parts, queue, buf
}

// infer runs one inference and hands its vectors (or its error) to the parts' requests,
// ending each request whose images are all done.
func (s *Stage) infer(input []float32, k int, parts []part) {
	vecs, err := s.model.Infer(input, k)
	s.inferences.Add(1)
	s.images.Add(int64(k))
	got := 0
	for _, p := range parts {
		s.doneMu.Lock()
		if err != nil {
			if p.req.err == nil {
				p.req.err = err
			}
		} else {
			copy(p.req.vecs[p.off:p.off+p.n], vecs[got:got+p.n])
		}
		p.req.left -= p.n
		done := p.req.left == 0
		s.doneMu.Unlock()
		got += p.n
		if done {
			close(p.req.done)
		}
	}
}

func (s *Stage) getBuf(n int) []float32 {
	s.bufMu.Lock()
	defer s.bufMu.Unlock()
	for i, b := range s.bufs {
		if cap(b) >= n {
			s.bufs = append(s.bufs[:i], s.bufs[i+1:]...)
			return b[:n]
		}
	}
	// Capacity in whole blocks of 16 images: a few sizes, so that buffers are reused.
	per := max(1, s.per)
	return make([]float32, n, (n/per+16)/16*16*per)
}

func (s *Stage) putBuf(b []float32) {
	if b == nil {
		return
	}
	s.bufMu.Lock()
	defer s.bufMu.Unlock()
	// Two: as many as the stage's two workers hold at once. More would keep tens of MB each.
	if len(s.bufs) < 2 {
		s.bufs = append(s.bufs, b)
		return
	}
	// Keep the largest: a pool of small buffers would never serve a large batch again, and
	// each miss allocates (and clears) a new blob of tens of MB.
	small := 0
	for i, c := range s.bufs {
		if cap(c) < cap(s.bufs[small]) {
			small = i
		}
	}
	if cap(b) > cap(s.bufs[small]) {
		s.bufs[small] = b
	}
}

// Close stops the batcher and closes the model; safe to call twice.
func (s *Stage) Close(context.Context) error {
	s.closeOnce.Do(func() {
		close(s.quit)
		started := true
		s.start.Do(func() { started = false })
		if started {
			<-s.exited
		}
		s.closeErr = s.model.Close()
	})
	return s.closeErr
}
