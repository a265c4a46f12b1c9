package reader

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// job is one frame on its way from the decoder to JetStream.
type job struct {
	seq, index, pts     int64
	framesRead, corrupt int64 // the source's counters once this frame was read
	mat                 *gocv.Mat
	frame               *messages.Frame
	err                 error
	encoded             chan struct{}
}

// readAll opens the source and publishes its frames until the end, a stop condition, a
// cancel or an error. It returns the end reason ("end", "truncated", "stop", "max_frames",
// "cancelled") and the source (for its counters).
func (r *run) readAll(ctx context.Context) (string, *source, error) {
	src, err := openSource(ctx, r.req.URI, r.req.Live, &r.s.cfg, r.log)
	if err != nil {
		return "", nil, err
	}
	defer src.close()
	r.mu.Lock()
	resume := r.prog
	r.mu.Unlock()
	if src.live {
		// A live source cannot be rewound: it continues with new frames, numbered on.
		src.index, src.framesRead, src.corrupt = resume.NextIndex, resume.FramesRead, resume.Corrupt
	}
	r.total.Store(src.total)
	r.firstIndex.Store(resume.NextIndex)
	if err := r.status(ctx, messages.StateReading, ""); err != nil {
		return "", src, err
	}

	pl := newPipeline(ctx, r)
	reason, decErr := r.decode(pl.ctx, src, pl, resume)
	pubErr := pl.finish()
	switch {
	case pubErr != nil && (decErr == nil || errors.Is(decErr, context.Canceled)):
		return "", src, pubErr
	case decErr != nil:
		return "", src, decErr
	}
	if queued, stored := pl.counts(); stored != queued {
		// Never end a source over frames that are not stored: its end of stream would count
		// fewer frames than were read, and the clusterer would close the source early.
		return "", src, fmt.Errorf("reader: %d of the %d frames of %s queued were not stored", queued-stored, queued, r.req.Source)
	}
	if (reason == "end" || reason == "truncated") && src.framesRead == 0 {
		return "", src, sourceErrorf("reader: %s has no readable frames", r.req.URI)
	}
	return reason, src, nil
}

// decode reads frames, applies the sampling and hands the kept ones to the pipeline.
func (r *run) decode(ctx context.Context, src *source, pl *pipeline, resume Progress) (string, error) {
	sp := sampler{s: r.req.Sampling, fps: src.fps}
	fileClock := !src.live && src.fps > 0 // every decision follows from the frame index
	seq := resume.NextSeq
	prevPts := int64(-1) // without fileClock: the time of the previous candidate frame
	liveStart := time.UnixMilli(resume.StartedMs)
	for {
		if ctx.Err() != nil {
			return "", context.Cause(ctx)
		}
		if r.cancelled.Load() {
			return "cancelled", nil
		}
		if mf := r.req.Sampling.MaxFrames; mf > 0 && seq >= int64(mf) {
			return "max_frames", nil
		}
		i := src.index
		r.index.Store(i)
		r.read.Store(src.framesRead)
		if fileClock {
			v := sp.decideIndex(i)
			if v == stopHere {
				return "stop", nil
			}
			if v == skipFrame || i < resume.NextIndex {
				res, err := src.step(ctx, nil, true)
				if err != nil {
					return "", err
				}
				if res == endOfSource {
					return src.endReason(), nil
				}
				continue
			}
		}
		mat, err := pl.takeMat(ctx)
		if err != nil {
			return "", err
		}
		res, err := src.step(ctx, mat, false)
		if err != nil || res != gotFrame {
			pl.putMat(mat)
			if err != nil {
				return "", err
			}
			if res == endOfSource {
				return src.endReason(), nil
			}
			continue
		}
		var pts int64
		switch {
		case fileClock:
			pts = sp.ptsOf(i)
		case src.live:
			pts = time.Since(liveStart).Milliseconds()
		default:
			pts = src.posMillis()
		}
		if !fileClock {
			v := sp.decide(i, pts, prevPts)
			if sp.candidate(i, pts) {
				prevPts = pts
			}
			if v == stopHere {
				pl.putMat(mat)
				return "stop", nil
			}
			if v == skipFrame || i < resume.NextIndex {
				pl.putMat(mat)
				continue
			}
		}
		j := &job{seq: seq, index: i, pts: pts, framesRead: src.framesRead, corrupt: src.corrupt, mat: mat, encoded: make(chan struct{})}
		seq++
		if err := pl.submit(j); err != nil {
			return "", err
		}
	}
}

func (s *source) endReason() string {
	if s.truncated {
		return "truncated"
	}
	return "end"
}

// pipeline runs the encoders and the publish window of one source.
type pipeline struct {
	r       *run
	ctx     context.Context
	cancel  context.CancelCauseFunc
	mats    []*gocv.Mat
	free    chan *gocv.Mat
	work    chan *job // to the encoders
	ordered chan *job // to the publisher, in seq order

	encoders, publisher, publishes sync.WaitGroup
	errMu                          sync.Mutex
	err                            error

	ackMu    sync.Mutex
	acked    map[int64]*job
	firstAck int64 // nextAck at the start: the frames stored before this read
	nextAck  int64
	queued   int64 // frames submitted (by the decoding goroutine only)
}

// counts returns the frames this read queued and how many of them are stored (a contiguous
// prefix); after finish.
func (p *pipeline) counts() (queued, stored int64) {
	p.ackMu.Lock()
	defer p.ackMu.Unlock()
	return p.queued, p.nextAck - p.firstAck
}

func newPipeline(ctx context.Context, r *run) *pipeline {
	cfg := r.s.cfg
	pctx, cancel := context.WithCancelCause(ctx)
	r.mu.Lock()
	nextAck := r.prog.NextSeq
	r.mu.Unlock()
	p := &pipeline{r: r, ctx: pctx, cancel: cancel,
		free:    make(chan *gocv.Mat, cfg.Encoders+2),
		work:    make(chan *job, cfg.Encoders),
		ordered: make(chan *job, cfg.Window),
		acked:   map[int64]*job{}, firstAck: nextAck, nextAck: nextAck}
	for range cfg.Encoders + 2 {
		m := gocv.NewMat()
		p.mats = append(p.mats, &m)
		p.free <- &m
	}
	for range cfg.Encoders {
		p.encoders.Add(1)
		go p.encodeLoop()
	}
	p.publisher.Add(1)
	go p.publishLoop()
	return p
}

func (p *pipeline) fail(err error) {
	p.errMu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.errMu.Unlock()
	p.cancel(err)
}

func (p *pipeline) takeMat(ctx context.Context) (*gocv.Mat, error) {
	select {
	case m := <-p.free:
		return m, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (p *pipeline) putMat(m *gocv.Mat) { p.free <- m }

// submit queues a decoded frame; it blocks while the pipeline is full (backpressure).
func (p *pipeline) submit(j *job) error {
	select {
	case p.ordered <- j:
	case <-p.ctx.Done():
		p.putMat(j.mat)
		return context.Cause(p.ctx)
	}
	p.queued++
	// The encoders never wait for the publisher, so this send cannot deadlock.
	p.work <- j
	return nil
}

// finish waits for every queued frame to be published and acknowledged (or abandoned after an
// error), frees the frame buffers and returns the first publishing error.
func (p *pipeline) finish() error {
	close(p.work)
	close(p.ordered)
	p.encoders.Wait()
	p.publisher.Wait()
	p.publishes.Wait()
	for _, m := range p.mats {
		m.Close()
	}
	p.cancel(nil)
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

func (p *pipeline) encodeLoop() {
	defer p.encoders.Done()
	resized := gocv.NewMat()
	defer resized.Close()
	enc := vision.NewJPEGEncoder()
	defer enc.Close()
	for j := range p.work {
		if p.ctx.Err() == nil {
			j.frame, j.err = p.encode(j, enc, &resized)
		} else {
			j.err = context.Cause(p.ctx)
		}
		p.putMat(j.mat)
		j.mat = nil
		close(j.encoded)
	}
}

func (p *pipeline) encode(j *job, enc *vision.JPEGEncoder, resized *gocv.Mat) (*messages.Frame, error) {
	r := p.r
	img, scale := *j.mat, 1.0
	if mw := r.req.Sampling.MaxWidth; mw > 0 && img.Cols() > mw {
		scale = float64(mw) / float64(img.Cols())
		h := max(1, int(math.Round(float64(img.Rows())*scale)))
		gocv.Resize(img, resized, image.Pt(mw, h), 0, 0, gocv.InterpolationArea)
		img = *resized
	}
	if img.Cols() > messages.MaxFrameSide || img.Rows() > messages.MaxFrameSide {
		return nil, sourceErrorf("reader: frame %d of %s is %dx%d, more than %d per side; set --max-width", j.index, r.req.URI, img.Cols(), img.Rows(), messages.MaxFrameSide)
	}
	data, err := enc.Encode(img, r.quality)
	if err != nil {
		return nil, sourceErrorf("reader: frame %d of %s: %w", j.index, r.req.URI, err)
	}
	return &messages.Frame{Source: r.req.Source, Seq: j.seq, Index: j.index, PTSMillis: j.pts, Width: img.Cols(), Height: img.Rows(),
		Scale: scale, JPEG: data, Params: r.req.Params}, nil
}

// publishLoop takes encoded frames in seq order and publishes them: asynchronously with at
// most Window acks outstanding when the stage has a JetStream handle, else one at a time
// through the stage's publisher. Either way a full stream makes the publish wait for room.
func (p *pipeline) publishLoop() {
	defer p.publisher.Done()
	var inflight chan *pending
	if p.r.s.cfg.JetStream != nil {
		inflight = make(chan *pending, p.r.s.cfg.Window)
		p.publishes.Add(1)
		go p.ackLoop(inflight)
		defer close(inflight)
	}
	for j := range p.ordered {
		select {
		case <-j.encoded:
		case <-p.ctx.Done():
			continue // drain: the decoder may still be queueing
		}
		if j.err != nil {
			p.fail(j.err)
			continue
		}
		if p.ctx.Err() != nil {
			continue
		}
		out := framesOut.Output(j.frame.Source, j.seq, j.frame)
		if inflight == nil {
			if err := p.r.in.Publish(p.ctx, out); err != nil {
				p.fail(p.publishError(j, err))
				continue
			}
			p.ack(j)
			continue
		}
		msg, err := stage.EncodeMsg(out)
		if err != nil {
			p.fail(sourceErrorf("reader: frame %d of %s: %w", j.index, p.r.req.URI, err))
			continue
		}
		fut, err := p.r.s.cfg.JetStream.PublishMsgAsync(msg)
		if err != nil {
			p.fail(p.publishError(j, err))
			continue
		}
		select {
		case inflight <- &pending{j: j, msg: msg, fut: fut}:
		case <-p.ctx.Done():
		}
	}
}

type pending struct {
	j   *job
	msg *nats.Msg
	fut jetstream.PubAckFuture
}

// ackLoop waits for the acks of async publishes in order. A publish refused by a full stream
// is repeated (same Nats-Msg-Id) until there is room: backpressure.
func (p *pipeline) ackLoop(inflight chan *pending) {
	defer p.publishes.Done()
	js, timeout := p.r.s.cfg.JetStream, p.r.s.cfg.AckTimeout
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for pd := range inflight {
		if p.ctx.Err() != nil {
			continue
		}
		timer.Reset(timeout)
		var err error
		select {
		case <-pd.fut.Ok():
		case err = <-pd.fut.Err():
			if stage.IsStreamFull(err) {
				err = p.publishWhenRoom(js, pd.msg)
			}
		case <-timer.C:
			err = fmt.Errorf("no ack within %v", timeout)
		case <-p.ctx.Done():
			continue
		}
		if err != nil {
			p.fail(p.publishError(pd.j, err))
			continue
		}
		p.ack(pd.j)
	}
}

// publishWhenRoom repeats a publish refused by a full stream, backing off up to a second,
// until it is stored, fails otherwise, or the read is stopped.
func (p *pipeline) publishWhenRoom(js jetstream.JetStream, msg *nats.Msg) error {
	delay := 5 * time.Millisecond
	for {
		if err := sleep(p.ctx, delay); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(p.ctx, p.r.s.cfg.AckTimeout)
		_, err := js.PublishMsg(ctx, msg)
		cancel()
		if !stage.IsStreamFull(err) {
			return err
		}
		delay = min(2*delay, time.Second)
	}
}

func (p *pipeline) publishError(j *job, err error) error {
	if errors.Is(err, nats.ErrMaxPayload) {
		return sourceErrorf("reader: frame %d of %s is %d bytes of JPEG, more than the server accepts; set --max-width or a lower --jpeg-quality: %w",
			j.index, p.r.req.URI, len(j.frame.JPEG), err)
	}
	return fmt.Errorf("reader: publishing frame %d of %s: %w", j.seq, p.r.req.Source, err)
}

// ack records a stored frame and advances the progress over the contiguous stored prefix.
func (p *pipeline) ack(j *job) {
	j.frame = nil // the JPEG is in JetStream now
	p.ackMu.Lock()
	defer p.ackMu.Unlock()
	p.acked[j.seq] = j
	var last *job
	for {
		n, ok := p.acked[p.nextAck]
		if !ok {
			break
		}
		delete(p.acked, p.nextAck)
		p.nextAck++
		last = n
	}
	if last == nil {
		return
	}
	r := p.r
	r.mu.Lock()
	r.prog.NextSeq, r.prog.NextIndex = last.seq+1, last.index+1
	r.prog.FramesRead, r.prog.Corrupt = last.framesRead, last.corrupt
	r.mu.Unlock()
}
