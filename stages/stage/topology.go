package stage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
)

// Stream names. One stream per hop; the source id is the last subject token, so one deployment
// serves many sources and a consumer or subscriber can pick one.
const (
	StreamIngest  = "PC_INGEST"
	StreamFrames  = "PC_FRAMES"
	StreamFaces   = "PC_FACES"
	StreamVectors = "PC_VECTORS"
	StreamResults = "PC_RESULTS"
	StreamStatus  = "PC_STATUS"
	StreamDead    = "PC_DEAD"
	// ImagesBucket is the object store holding upper-body crops and montages.
	ImagesBucket = "personcluster-images"
	// SourcesBucket is the key-value bucket of per-source reader state (progress, cancel).
	SourcesBucket = "personcluster-sources"
	// PeopleBucket is the key-value bucket of the people gallery (package people): identities
	// that outlive a result, kept without an age limit.
	PeopleBucket = "personcluster-people"
	// PeopleImagesBucket is the object store of the gallery's thumbnails, kept as long as their
	// person (the crops in ImagesBucket expire with the results).
	PeopleImagesBucket = "personcluster-people-images"
)

// Durable consumer names: replicas of a stage share one, so JetStream spreads the work.
const (
	ConsumerReader    = messages.StageReader
	ConsumerDetector  = messages.StageDetector
	ConsumerEncoder   = messages.StageEncoder
	ConsumerEmbedder  = messages.StageEmbedder
	ConsumerClusterer = messages.StageClusterer
)

// Topology sizes the streams. Zero values take the defaults.
type Topology struct {
	Replicas int           // stream replicas (3 in a NATS cluster)
	Memory   bool          // memory storage instead of file storage
	MaxBytes int64         // bound on each work stream (backpressure: publishers wait when full)
	MaxAge   time.Duration // how long vectors, results and status are kept
	AckWait  time.Duration
	// MaxDeliver bounds redeliveries of one input before it is dead-lettered.
	MaxDeliver int
}

func (t *Topology) setDefaults() {
	if t.Replicas <= 0 {
		t.Replicas = 1
	}
	if t.MaxBytes <= 0 {
		t.MaxBytes = 1 << 30
	}
	if t.MaxAge <= 0 {
		t.MaxAge = 7 * 24 * time.Hour
	}
	if t.AckWait <= 0 {
		t.AckWait = 60 * time.Second
	}
	if t.MaxDeliver <= 0 {
		t.MaxDeliver = 5
	}
}

func (t Topology) storage() jetstream.StorageType {
	if t.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// Streams returns the stream configurations.
func (t Topology) Streams() []jetstream.StreamConfig {
	t.setDefaults()
	dedupe := 10 * time.Minute
	work := func(name, desc string, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name: name, Description: desc, Subjects: subjects,
			// Interest retention: a message goes once every consumer has acked it. Discard new
			// with a byte limit makes a full stream refuse publishes, which slows the producer.
			Retention: jetstream.InterestPolicy, Discard: jetstream.DiscardNew,
			MaxBytes: t.MaxBytes, MaxAge: t.MaxAge, Storage: t.storage(), Replicas: t.Replicas, Duplicates: dedupe,
		}
	}
	kept := func(name, desc string, perSubject int64, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name: name, Description: desc, Subjects: subjects, Retention: jetstream.LimitsPolicy,
			MaxMsgsPerSubject: perSubject, MaxBytes: t.MaxBytes, MaxAge: t.MaxAge, Storage: t.storage(),
			Replicas: t.Replicas, Duplicates: dedupe,
		}
	}
	ingest := jetstream.StreamConfig{
		Name: StreamIngest, Description: "sources to read (work queue: one reader per source)",
		Subjects: []string{messages.SubjectIngest + ".>"}, Retention: jetstream.WorkQueuePolicy,
		MaxAge: t.MaxAge, Storage: t.storage(), Replicas: t.Replicas, Duplicates: dedupe,
	}
	vectors := work(StreamVectors, "face and clothing vectors, kept until the clusterer is done with a source",
		messages.SubjectFaceVec+".>", messages.SubjectClothVec+".>")
	// The clusterer rebuilds its state of an unfinished source from here after a restart, so
	// vectors are kept by limits, not by acknowledgement; the clusterer purges finished sources.
	vectors.Retention = jetstream.LimitsPolicy
	return []jetstream.StreamConfig{
		ingest,
		work(StreamFrames, "sampled frames as JPEG", messages.SubjectFrames+".>"),
		work(StreamFaces, "accepted frames' faces and crops", messages.SubjectFaces+".>"),
		vectors,
		kept(StreamResults, "cluster results", 16, messages.SubjectResults+".>"),
		kept(StreamStatus, "progress and state events", 256, messages.SubjectStatus+".>"),
		kept(StreamDead, "dead letters: inputs a stage could not process, with the reason", -1, messages.SubjectDead+".>"),
	}
}

// ConsumerConfig is the durable pull consumer of a stage.
func (t Topology) ConsumerConfig(name, filter string, maxAckPending int) jetstream.ConsumerConfig {
	t.setDefaults()
	return jetstream.ConsumerConfig{
		Durable: name, Description: "personcluster " + name, FilterSubject: filter,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: t.AckWait,
		// One more than MaxDeliver so the runtime sees the last attempt and dead-letters it
		// itself instead of the server silently giving up.
		MaxDeliver: t.MaxDeliver + 1, MaxAckPending: maxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy, Replicas: t.Replicas,
	}
}

// StreamConsumer is a durable consumer and the stream it reads.
type StreamConsumer struct {
	Stream string
	Config jetstream.ConsumerConfig
}

// Consumers lists every stage's durable consumer.
func (t Topology) Consumers() []StreamConsumer {
	return []StreamConsumer{
		{StreamIngest, t.readerConsumer()},
		{StreamFrames, t.ConsumerConfig(ConsumerDetector, messages.SubjectFrames+".>", 1024)},
		{StreamFaces, t.ConsumerConfig(ConsumerEncoder, messages.SubjectFaces+".>", 1024)},
		{StreamFaces, t.ConsumerConfig(ConsumerEmbedder, messages.SubjectFaces+".>", 1024)},
		{StreamVectors, t.consumerAll(ConsumerClusterer)},
	}
}

// readerConsumer has no delivery limit: a source's request comes again each time its reader
// stops (a restart, a node's death), however long the source lives; the stage loop then sets
// none either.
func (t Topology) readerConsumer() jetstream.ConsumerConfig {
	c := t.ConsumerConfig(ConsumerReader, messages.SubjectIngest+".>", 64)
	c.MaxDeliver = -1
	return c
}

func (t Topology) consumerAll(name string) jetstream.ConsumerConfig {
	c := t.ConsumerConfig(name, "", 4096)
	c.FilterSubjects = []string{messages.SubjectFaceVec + ".>", messages.SubjectClothVec + ".>"}
	return c
}

// Ensure creates or updates every stream, consumer and bucket. It is idempotent: every
// process calls it at start, whichever starts first. Consumers are created together with the
// streams because interest-retention streams drop messages nobody is subscribed to yet.
func (t Topology) Ensure(ctx context.Context, js jetstream.JetStream) error {
	t.setDefaults()
	for _, cfg := range t.Streams() {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("stage: creating stream %s: %w", cfg.Name, err)
		}
	}
	for _, c := range t.Consumers() {
		if _, err := js.CreateOrUpdateConsumer(ctx, c.Stream, c.Config); err != nil {
			return fmt.Errorf("stage: creating consumer %s on %s: %w", c.Config.Durable, c.Stream, err)
		}
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: ImagesBucket, Description: "upper-body crops and montages of cluster results",
		Storage: t.storage(), Replicas: t.Replicas, TTL: t.MaxAge,
	}); err != nil {
		return fmt.Errorf("stage: creating object store %s: %w", ImagesBucket, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: SourcesBucket, Description: "reader progress and state per source",
		Storage: t.storage(), Replicas: t.Replicas, History: 1,
	}); err != nil {
		return fmt.Errorf("stage: creating key-value bucket %s: %w", SourcesBucket, err)
	}
	people := jetstream.KeyValueConfig{
		Bucket: PeopleBucket, Description: "people gallery: identities, names, exemplar face vectors, constraints",
		Storage: t.storage(), Replicas: t.Replicas, History: 1,
		// Every gallery change writes records under fresh keys and purges the ones replaced;
		// markers with a TTL let the server drop those purge markers, which would otherwise
		// pile up (a few per linked window) for as long as the gallery lives.
		LimitMarkerTTL: time.Minute,
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, people); err != nil {
		// A server before 2.11 has no marker TTLs: the gallery works, its markers stay.
		people.LimitMarkerTTL = 0
		if _, err2 := js.CreateOrUpdateKeyValue(ctx, people); err2 != nil {
			return fmt.Errorf("stage: creating key-value bucket %s: %w", PeopleBucket, errors.Join(err, err2))
		}
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: PeopleImagesBucket, Description: "people gallery thumbnails",
		Storage: t.storage(), Replicas: t.Replicas,
	}); err != nil {
		return fmt.Errorf("stage: creating object store %s: %w", PeopleImagesBucket, err)
	}
	return nil
}

// IsStreamFull reports whether a publish failed because a discard-new stream is at its limit:
// the producer should wait and retry (backpressure), not fail. nats-server answers that with
// its "store failed" error (JSStreamStoreFailedF, code 10077) whose description is the store's
// limit error; the same code with any other description (a message too large for the store, a
// disk failing) is not a full stream, and waiting would not help.
func IsStreamFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsStreamStoreFailed {
		return false
	}
	switch apiErr.Description {
	case "maximum bytes exceeded", "maximum messages exceeded", "maximum messages per subject exceeded":
		// nats-server's store errors ErrMaxBytes, ErrMaxMsgs and ErrMaxMsgsPerSubject.
		return true
	}
	return false
}

// jsStreamStoreFailed is nats-server's JSStreamStoreFailedF: storing a message failed.
const jsStreamStoreFailed jetstream.ErrorCode = 10077
