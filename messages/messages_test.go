package messages

import (
	"bytes"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

var update = flag.Bool("update", false, "rewrite the golden .msgpack files in ../testdata/messages")

const goldenDir = "../testdata/messages"

// samples holds one fully populated message of every type; the golden files pin their bytes.
func samples() map[string]Message {
	p := DefaultParams()
	box := Box{10, 60, 70, 20}
	return map[string]Message{
		"ingest": &IngestRequest{Source: "cam-1", URI: "video.mp4", Sampling: Sampling{EveryN: 2, SkipSeconds: 1.5, MaxWidth: 960, JPEGQuality: 90}, Params: p, AtMillis: 1764107000000},
		"frame":  &Frame{Source: "cam-1", Seq: 7, Index: 14, PTSMillis: 467, Width: 4, Height: 2, Scale: 1, JPEG: []byte{0xff, 0xd8, 0xff, 0xd9}, Params: p},
		"eos":    &EndOfStream{Source: "cam-1", Frames: 120, FramesRead: 240, Corrupt: 1, Reason: "end", Params: p},
		"faces": &FrameFaces{Source: "cam-1", Seq: 7, Index: 14, PTSMillis: 467, Width: 640, Height: 360, Accepted: true, Detected: 2, Params: p,
			Faces: []Face{{Box: box, Score: 0.98, FaceJPEG: []byte{1}, FaceBox: Box{5, 55, 65, 5}, ClothJPEG: []byte{2}, BodyJPEG: []byte{3}},
				{Box: Box{100, 160, 170, 110}, Score: 0.9, FaceJPEG: []byte{4}, FaceBox: Box{5, 55, 75, 5}, ClothJPEG: []byte{5}, BodyJPEG: []byte{6}}}},
		"facevec":  &FaceVectors{Source: "cam-1", Seq: 7, Index: 14, PTSMillis: 467, Accepted: true, Model: "fr_feature", Vectors: [][]float32{{0.5, -0.25}, {1, 0}}, Boxes: []Box{box, box}, Bodies: [][]byte{{3}, {6}}, Params: p},
		"clothvec": &ClothVectors{Source: "cam-1", Seq: 7, Index: 14, Accepted: true, Model: "mobilenet_v1", Vectors: [][]float32{{0.125, 2}, {3, 4}}, Params: p},
		"result": &ClusterResult{Source: "cam-1", Final: true, FramesSeen: 120, FramesAccepted: 60, Faces: 150, Threshold: 0.72,
			Clusters: []Cluster{{ID: 0, Members: []Member{{Seq: 7, Frame: 14, PTSMillis: 467, Face: 0, Box: box, Image: "cam-1/7-0.jpg"}}, Person: "pq2x7k4m", Name: "Ann"}},
			Dropped:  []Member{{Seq: 8, Frame: 16, Face: 1, Box: box}}, Params: p, FaceModel: "fr_feature", ClothModel: "mobilenet_v1", Bucket: "personcluster", Montage: "cam-1/montage.png", AtMillis: 1764107000000},
		"dead": &DeadLetter{Stage: "detector", Source: "cam-1", Subject: "frames.cam-1", Reason: "corrupt JPEG", Deliveries: 1, Headers: map[string][]string{"Nats-Msg-Id": {"cam-1.7.reader"}}, Data: []byte{9, 9}, AtMillis: 1764107000000},
		// Fields added later, omitted when empty: the files above keep their bytes, and these pin
		// the new fields.
		"result_partial": &ClusterResult{Source: "cam-1", Final: true, Partial: true, Reason: "clusterer: cam-1 has 60 faces, more than --max-source-faces 50",
			FramesSeen: 40, FramesAccepted: 20, Faces: 48, Params: p, AtMillis: 1764107000000},
		"dead_forwarded": &DeadLetter{Stage: "detector", Source: "cam-1", Subject: "frames.cam-1", Reason: "corrupt JPEG", Deliveries: 1, Headers: map[string][]string{}, Data: []byte{9}, AtMillis: 1764107000000, Forwarded: true},
		"status":         &Status{Source: "cam-1", Stage: "reader", State: StateProgress, FramesRead: 100, FramesPublished: 50, FramesTotal: 275, ETASeconds: 3.5, AtMillis: 1764107000000},
	}
}

func TestGolden(t *testing.T) {
	for name, m := range samples() {
		t.Run(name, func(t *testing.T) {
			data, err := Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(goldenDir, name+".msgpack")
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run go test ./messages -update to create it): %v", err)
			}
			if !bytes.Equal(data, golden) {
				t.Errorf("encoding of %s changed the wire format; if intended, bump Version or run -update", name)
			}
			got, err := Decode(golden)
			if err != nil {
				t.Fatalf("decoding golden %s: %v", name, err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("round trip of %s:\n got %+v\nwant %+v", name, got, m)
			}
			if typ, v, err := PeekType(golden); err != nil || typ != m.MessageType() || v != Version {
				t.Errorf("PeekType = %q, %d, %v", typ, v, err)
			}
		})
	}
}

// TestDecodesResultsBeforePeople: a result written before clusters carried a person (the
// golden file of that time) still decodes, its clusters without one.
func TestDecodesResultsBeforePeople(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(goldenDir, "result-before-people.msgpack"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeAs[*ClusterResult](data)
	if err != nil {
		t.Fatal(err)
	}
	want := *samples()["result"].(*ClusterResult)
	want.Clusters = []Cluster{want.Clusters[0]}
	want.Clusters[0].Person, want.Clusters[0].Name = "", ""
	if !reflect.DeepEqual(r, &want) {
		t.Errorf("got %+v\nwant %+v", r, &want)
	}
}

func envelope(t *testing.T, typ any, version any, body any) []byte {
	t.Helper()
	data, err := msgpack.Marshal([]any{typ, version, body})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDecodeErrors(t *testing.T) {
	good := samples()["frame"].(*Frame)
	badFrame := *good
	badFrame.Width = 0
	nanVec := *samples()["clothvec"].(*ClothVectors)
	nanVec.Vectors = [][]float32{{float32(math.NaN()), 1}}
	ragged := *samples()["clothvec"].(*ClothVectors)
	ragged.Vectors = [][]float32{{1, 2}, {1}}
	pathSource := *good
	pathSource.Source = "../etc"
	tests := []struct {
		name string
		data []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrMalformed, "reading envelope"},
		{"garbage", []byte("not msgpack at all"), ErrMalformed, ""},
		{"map not array", envelope(t, "x", 1, nil)[1:], ErrMalformed, ""},
		{"two elements", mustMarshal(t, []any{"personcluster.frame", 1}), ErrMalformed, "2 elements"},
		{"unknown type", envelope(t, "personcluster.nope", 1, map[string]any{}), ErrUnknownType, "personcluster.nope"},
		{"future version", envelope(t, string(TypeFrame), 2, map[string]any{}), ErrUnsupportedVersion, "version 2"},
		{"version zero", envelope(t, string(TypeFrame), 0, map[string]any{}), ErrUnsupportedVersion, ""},
		{"type not a string", envelope(t, 42, 1, map[string]any{}), ErrMalformed, "reading type"},
		{"body wrong shape", envelope(t, string(TypeFrame), 1, map[string]any{"seq": "seven"}), ErrMalformed, "decoding personcluster.frame body"},
		{"truncated", mustEncode(t, good)[:20], ErrMalformed, ""},
		{"zero width", mustEncode(t, &badFrame), ErrInvalid, "frame size 0x2"},
		{"nan vector", mustEncode(t, &nanVec), ErrInvalid, "not finite"},
		{"ragged vectors", mustEncode(t, &ragged), ErrInvalid, "length 1"},
		{"path in source", mustEncode(t, &pathSource), ErrBadSourceID, "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "messages: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestDecodeAsWrongType(t *testing.T) {
	data := mustEncode(t, samples()["eos"])
	if _, err := DecodeAs[*Frame](data); !errors.Is(err, ErrWrongType) {
		t.Fatalf("DecodeAs[*Frame](eos) error = %v, want ErrWrongType", err)
	}
	eos, err := DecodeAs[*EndOfStream](data)
	if err != nil || eos.Frames != 120 {
		t.Fatalf("DecodeAs[*EndOfStream] = %+v, %v", eos, err)
	}
}

func TestValidateSourceID(t *testing.T) {
	for _, ok := range []string{"a", "cam-1", "src_20261125-214100-0a1b", strings.Repeat("x", 64)} {
		if err := ValidateSourceID(ok); err != nil {
			t.Errorf("ValidateSourceID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "..", "a/b", "a.b", "*", ">", "a b", "-x", strings.Repeat("x", 65), "é", "a\x00"} {
		if err := ValidateSourceID(bad); !errors.Is(err, ErrBadSourceID) {
			t.Errorf("ValidateSourceID(%q) = %v, want ErrBadSourceID", bad, err)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name   string
		mutate func(*Params)
	}{
		{"sim above 1", func(p *Params) { p.Sim = 1.5 }},
		{"sim NaN", func(p *Params) { p.Sim = math.NaN() }},
		{"min cluster size 0", func(p *Params) { p.MinCSize = 0 }},
		{"min faces above max", func(p *Params) { p.MinFaces = 3; p.MaxFaces = 2 }},
		{"unknown method", func(p *Params) { p.Method = "kmeans" }},
		{"no weights", func(p *Params) { p.FaceWeight, p.ClothWeight = 0, 0 }},
		{"negative alpha", func(p *Params) { p.Alpha = -0.1 }},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			tc.mutate(&p)
			if p.Validate() == nil {
				t.Errorf("%+v validated", p)
			}
		})
	}
}

// The ids are on the wire (JetStream dedupes on them across versions): their format is pinned.
func TestMsgIDAndSubjects(t *testing.T) {
	for _, tc := range []struct{ name, got, want string }{
		{"MsgID", MsgID("cam-1", 42, StageDetector), "cam-1.42.detector"},
		{"EOSMsgID", EOSMsgID("cam-1", StageReader), "cam-1.eos.reader"},
		{"ResultMsgID", ResultMsgID("cam-1", "final"), "cam-1.result.final"},
		{"IngestMsgID", IngestMsgID("cam-1"), "cam-1.ingest"},
		{"DeadLetterMsgID", DeadLetterMsgID(StageEncoder, "PC_FACES", 7), "dead.encoder.PC_FACES.7"},
		{"Subject", Subject(SubjectFrames, "cam-1"), "frames.cam-1"},
		{"DeadSubject", DeadSubject(StageEncoder, "cam-1"), "dead.encoder.cam-1"},
		{"DeadSubject with bad id", DeadSubject(StageEncoder, "bad.id"), "dead.encoder._"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
	if err := ValidateSourceID(NewSourceID(sampleTime)); err != nil {
		t.Errorf("NewSourceID is not valid: %v", err)
	}
}

func mustEncode(t *testing.T, m Message) []byte {
	t.Helper()
	data, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	data, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSourceIDForNamesTheVideo(t *testing.T) {
	for _, tc := range []struct{ uri, prefix string }{
		{"../shared/testdata/video/cast_public.mp4", "cast_public-20"},
		{"/videos/Mein Film (2).MP4", "Mein_Film__2-20"},
		{"https://example.com/live/stream.m3u8?token=x", "stream-20"},
		{"rtsp://cam.local:554/", "cam_local_554-20"},
		{"0", "src-20"},
		{"", "src-20"},
		{"/x/" + strings.Repeat("a", 80) + ".mp4", strings.Repeat("a", 32) + "-20"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			id := SourceIDFor(tc.uri, sampleTime)
			if !strings.HasPrefix(id, tc.prefix) {
				t.Errorf("SourceIDFor(%q) = %q, want it to start with %q", tc.uri, id, tc.prefix)
			}
			if err := ValidateSourceID(id); err != nil {
				t.Errorf("SourceIDFor(%q) = %q: %v", tc.uri, id, err)
			}
		})
	}
}
