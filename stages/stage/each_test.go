package stage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
)

func TestEach(t *testing.T) {
	eos := &messages.EndOfStream{Source: "src1", Frames: 2}
	ingest := &messages.IngestRequest{Source: "src1", URI: "v.mp4"}
	failing := frame(1)
	batch := []*stage.Input{
		{Subject: "frames.src1", Message: frame(0)},
		{Subject: "frames.src1", Message: failing},
		{Subject: "frames.src1", Message: eos},
		{Subject: "frames.src1", Message: ingest},
		{Subject: "frames.src1"},
	}
	transient := errors.New("model busy")
	var seen []int64
	res := stage.Each(context.Background(), batch, stage.Route{Stage: "detector", Next: messages.SubjectFaces},
		func(_ context.Context, _ *stage.Input, f *messages.Frame) ([]stage.Output, error) {
			seen = append(seen, f.Index)
			if f == failing {
				return nil, transient
			}
			return []stage.Output{{Subject: "faces.src1", MsgID: "id"}}, nil
		})
	if len(res) != len(batch) {
		t.Fatalf("%d results for %d inputs", len(res), len(batch))
	}
	if fmt.Sprint(seen) != "[0 1]" {
		t.Errorf("fn saw frames %v, want [0 1]", seen)
	}
	for _, tc := range []struct {
		name    string
		input   int
		wantErr error // nil: no error
		wantID  string
	}{
		{"frame", 0, nil, "id"},
		{"transient error stays the input's", 1, transient, ""},
		{"end of stream forwarded", 2, nil, "src1.eos.detector"},
		{"other type is bad input", 3, stage.ErrPermanent, ""},
		{"nil message is bad input", 4, stage.ErrPermanent, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := res[tc.input]
			if tc.wantErr != nil {
				if !errors.Is(r.Err, tc.wantErr) || len(r.Outputs) != 0 {
					t.Fatalf("result %+v, want error %v and no outputs", r, tc.wantErr)
				}
				return
			}
			if r.Err != nil || len(r.Outputs) != 1 || r.Outputs[0].MsgID != tc.wantID {
				t.Fatalf("result %+v, want one output with id %q", r, tc.wantID)
			}
		})
	}
	if err := res[3].Err.Error(); err != "detector: unexpected personcluster.ingest on frames.src1" {
		t.Errorf("unexpected-type error = %q", err)
	}
	if out := res[2].Outputs[0]; out.Subject != "faces.src1" || out.Message != eos {
		t.Errorf("forwarded marker %+v, want the marker itself on faces.src1", out)
	}
}

// Without Route.Next the stage's function gets end-of-stream markers like any input of its type.
func TestEachWithoutNext(t *testing.T) {
	batch := []*stage.Input{{Message: &messages.EndOfStream{Source: "src1"}}, {Message: frame(0)}}
	var types []messages.Type
	res := stage.Each(context.Background(), batch, stage.Route{Stage: "clusterer"},
		func(_ context.Context, _ *stage.Input, m messages.Message) ([]stage.Output, error) {
			types = append(types, m.MessageType())
			return nil, nil
		})
	if fmt.Sprint(types) != "[personcluster.eos personcluster.frame]" || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("fn saw %v, results %+v", types, res)
	}
}

// A stage that turns each frame into one FrameFaces and passes end-of-stream markers on.
func ExampleEach() {
	route := stage.Route{Stage: "detector", Next: messages.SubjectFaces}
	process := func(ctx context.Context, batch []*stage.Input) []stage.Result {
		return stage.Each(ctx, batch, route, func(_ context.Context, _ *stage.Input, f *messages.Frame) ([]stage.Output, error) {
			ff := &messages.FrameFaces{Source: f.Source, Seq: f.Seq, Index: f.Index, Width: f.Width, Height: f.Height}
			return []stage.Output{route.Output(f.Source, f.Seq, ff)}, nil
		})
	}
	batch := []*stage.Input{
		{Subject: "frames.cam-1", Message: &messages.Frame{Source: "cam-1", Seq: 0, Width: 4, Height: 2}},
		{Subject: "frames.cam-1", Message: &messages.EndOfStream{Source: "cam-1", Frames: 1}},
	}
	for _, r := range process(context.Background(), batch) {
		fmt.Println(r.Outputs[0].Subject, r.Outputs[0].MsgID, r.Outputs[0].Message.MessageType())
	}
	// Output:
	// faces.cam-1 cam-1.0.detector personcluster.faces
	// faces.cam-1 cam-1.eos.detector personcluster.eos
}
