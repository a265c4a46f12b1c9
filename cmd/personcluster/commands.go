//go:build !lean

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/clusterer"
	"github.com/personcluster/personcluster/stages/evaluate"
	"github.com/personcluster/personcluster/stages/output"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/reader"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

func logger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l, ReplaceAttr: redactAttr}))
}

func cmdRun(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	models := modelFlags(fs)
	req := addRequestFlags(fs)
	out := fs.String("out", "out", "output folder: OUT/<source>/{clusters/,montage.png,results.json,index.html} (empty: none)")
	store := fs.String("store", "", "JetStream store folder, kept between runs with the people gallery (default: a temporary folder)")
	listen := fs.String("listen", "", "also serve NATS on host:port so `watch` can follow from another shell")
	jsonOut := fs.Bool("json", false, "print the result as JSON instead of a table")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	metricsAddr := fs.String("http", "", "serve the live UI (/), /metrics and /healthz on this address (no host: localhost)")
	uiToken := uiTokenFlag(fs)
	maxSourceFaces := maxSourceFacesFlag(fs)
	truthPath := fs.String("truth", "", "ground truth (testdata/video/*.truth.json): score the result against it, as `personcluster eval`")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: personcluster run [flags] VIDEO|URL|CAMERA-INDEX")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	request, err := req.request(fs.Arg(0))
	if err != nil {
		return err
	}
	var truth *evaluate.Truth
	if *truthPath != "" {
		if truth, err = evaluate.LoadTruth(*truthPath); err != nil {
			return err
		}
	}
	log := logger(*logLevel)
	reg := stage.NewRegistry()
	ui, err := serveUI(ctx, *metricsAddr, *uiToken, reg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "personcluster: source %s: %s\n", request.Source, messages.Redacted(request.URI))
	res, err := pipeline.RunLocal(ctx, pipeline.LocalOptions{
		Options:  pipeline.Options{Models: *models, Logger: log, Metrics: reg, Clusterer: clusterer.Config{MaxFaces: *maxSourceFaces}},
		StoreDir: *store, Listen: *listen, Out: *out, Request: request, Progress: os.Stderr, ProgressLines: !isTerminal(os.Stderr),
		Started: ui.startedHook(ctx, log),
	})
	if res != nil && res.Result != nil {
		if *jsonOut {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(output.NewResults(res.Result))
		} else {
			printSummary(res.Result, res.Elapsed)
		}
		if res.OutDir != "" {
			fmt.Fprintf(os.Stderr, "wrote %s (open %s/index.html)\n", res.OutDir, res.OutDir)
		}
		if truth != nil {
			if e := printEvaluation(os.Stdout, truth, res.Result, *jsonOut); e != nil && err == nil {
				err = e
			}
		}
	}
	return err
}

func printSummary(r *messages.ClusterResult, elapsed time.Duration) {
	fmt.Printf("source %s: %d frames read, %d accepted, %d faces → %d people (threshold %.4f, %d faces in clusters < %d)",
		r.Source, r.FramesSeen, r.FramesAccepted, r.Faces, len(r.Clusters), r.Threshold, len(r.Dropped), r.Params.MinCSize)
	if elapsed > 0 {
		fmt.Printf(" in %.1fs", elapsed.Seconds())
	}
	fmt.Println()
	switch {
	case r.Partial && r.Reason != "":
		fmt.Printf("partial: %s\n", r.Reason)
	case r.Partial:
		fmt.Printf("partial: the quota of %d accepted frames was not reached\n", r.Params.Quota)
	}
	if len(r.RejectedCounts) > 0 {
		var parts []string
		total := 0
		for _, reason := range slices.Sorted(maps.Keys(r.RejectedCounts)) {
			parts = append(parts, fmt.Sprintf("%d %s", r.RejectedCounts[reason], strings.ReplaceAll(reason, "_", " ")))
			total += r.RejectedCounts[reason]
		}
		fmt.Printf("face-quality gate: %d detections kept out (%s; listed in results.json)\n", total, strings.Join(parts, ", "))
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tPERSON\tFACES\tFIRST FRAME\tLAST FRAME\tFRAMES")
	for _, c := range r.Clusters {
		var frames []string
		first, last := int64(-1), int64(-1)
		for i, m := range c.Members {
			if i < 8 {
				frames = append(frames, fmt.Sprint(m.Frame))
			}
			if first < 0 || m.Frame < first {
				first = m.Frame
			}
			last = max(last, m.Frame)
		}
		if len(c.Members) > 8 {
			frames = append(frames, "…")
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\n", c.ID, personLabel(c), len(c.Members), first, last, strings.Join(frames, " "))
	}
	tw.Flush()
}

func cmdServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	store := fs.String("store", "data/jetstream", "JetStream store folder")
	host := fs.String("host", "127.0.0.1", "listen host (0.0.0.0 for other machines)")
	port := fs.Int("port", 4222, "listen port")
	config := fs.String("config", "", "nats-server config file (auth, TLS, cluster); overrides host and port")
	name := fs.String("server-name", "", "this node's name, stable across restarts (required in a cluster)")
	clusterName := fs.String("cluster-name", "personcluster", "JetStream cluster name (with --cluster)")
	clusterListen := fs.String("cluster", "", "listen for the other nodes' routes on host:port (a cluster node)")
	routes := fs.String("routes", "", "the other nodes' routes, comma-separated nats-route://host:port")
	topo := topologyFlags(fs)
	ensure := ensureFlag(fs)
	// The server's own connection (in-process, so no TLS) creates the topology: where the
	// config has users it needs one allowed to manage streams.
	admin := &broker.ClientConfig{Name: "personcluster-server"}
	clientAuthFlags(fs, admin)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	scfg := broker.ServerConfig{Host: *host, Port: *port, ConfigFile: *config, Logging: true,
		ServerName: *name, ClusterListen: *clusterListen}
	if *config == "" || isSet(fs, "store") {
		scfg.StoreDir = *store
	}
	if *clusterListen != "" || isSet(fs, "cluster-name") {
		scfg.ClusterName = *clusterName
	}
	if *routes != "" {
		scfg.Routes = strings.Split(*routes, ",")
	}
	srv, err := broker.StartServer(scfg)
	if err != nil {
		return err
	}
	defer srv.Stop()
	if *ensure {
		auth, err := admin.Options()
		if err != nil {
			return err
		}
		nc, err := srv.Connect("personcluster-server", auth...)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := broker.JetStream(nc)
		if err != nil {
			return err
		}
		// A cluster node waits for its peers: replicated streams need a quorum.
		if err := broker.WaitJetStream(ctx, 5*time.Minute, func(ctx context.Context) error { return topo.Ensure(ctx, js) }); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "personcluster: NATS JetStream serving at %s (store %s)\n", srv.ClientURL(), srv.StoreDir())
	<-ctx.Done()
	return nil
}

func connect(ctx context.Context, c *broker.ClientConfig, topo *stage.Topology) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := c.Connect()
	if err != nil {
		return nil, nil, err
	}
	js, err := broker.JetStream(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	if topo != nil {
		// A cluster that is still electing its leaders answers after a while.
		if err := broker.WaitJetStream(ctx, time.Minute, func(ctx context.Context) error { return topo.Ensure(ctx, js) }); err != nil {
			nc.Close()
			return nil, nil, err
		}
	}
	return nc, js, nil
}

func cmdStage(ctx context.Context, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	client := clientFlags(fs, "personcluster-"+name)
	models := modelFlags(fs)
	topo := topologyFlags(fs)
	ensure := ensureFlag(fs)
	tuning := tuningFlags(fs, name)
	metricsAddr := fs.String("http", "", "serve /metrics and /healthz on this address (e.g. :9090)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	var maxSourceFaces *int
	if name == pipeline.Clusterer {
		maxSourceFaces = maxSourceFacesFlag(fs)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	var clustererConfig clusterer.Config
	if maxSourceFaces != nil {
		clustererConfig.MaxFaces = *maxSourceFaces
	}
	log := logger(*logLevel)
	ensureTopo := topo
	if !*ensure {
		ensureTopo = nil
	}
	nc, js, err := connect(ctx, client, ensureTopo)
	if err != nil {
		return err
	}
	defer nc.Close()
	reg := stage.NewRegistry()
	reg.AddHealthCheck("nats", func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("not connected to NATS (%s)", nc.Status())
		}
		return nil
	})
	addr, err := reg.ServeHTTP(ctx, *metricsAddr, log)
	if err != nil {
		return err
	}
	if addr != "" {
		log.Info("metrics and health", "addr", addr)
	}
	spec, err := pipeline.Build(ctx, name, js, pipeline.Options{Models: *models, Logger: log, Metrics: reg,
		Tuning: map[string]pipeline.Tuning{name: *tuning}, Clusterer: clustererConfig})
	if err != nil {
		return err
	}
	spec.Config.MaxDeliver = topo.MaxDeliver
	return stage.Run(ctx, js, spec.Config, spec.Processor)
}

func cmdIngest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	client := clientFlags(fs, "personcluster-ingest")
	req := addRequestFlags(fs)
	cancel := fs.String("cancel", "", "stop reading this source id (a queued source is dropped, a running one ends \"cancelled\")")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: personcluster ingest [flags] SOURCE   (file path, rtsp:// or http(s):// URL, or camera index)")
		fmt.Fprintln(fs.Output(), "       personcluster ingest [flags] --cancel ID")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*cancel == "") == (fs.NArg() != 1) {
		fs.Usage()
		return errUsage
	}
	var request messages.IngestRequest
	if *cancel == "" {
		var err error
		// Checked before connecting: a bad --source or option fails at once.
		if request, err = req.request(ingestURI(fs.Arg(0))); err != nil {
			if errors.Is(err, messages.ErrBadSourceID) {
				return fmt.Errorf("--source: %w", err)
			}
			return fmt.Errorf("ingest request: %w", err)
		}
	}
	command := "ingest"
	if *cancel != "" {
		command = "ingest --cancel"
	}
	retry := newJetStreamRetry(command)
	nc, js, err := connectIngest(ctx, client, retry)
	if err != nil {
		return err
	}
	defer nc.Close()
	if *cancel != "" {
		return cancelSource(ctx, js, retry, *cancel)
	}
	if err := retry.do(ctx, func(ctx context.Context) error { return reader.CheckNew(ctx, js, request.Source) }); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	// A repeated publish is deduplicated by the request's message id (PC_INGEST keeps ids for
	// longer than jetStreamRetryWait), so one whose ack was lost in a failover may be sent again.
	if err := retry.do(ctx, func(ctx context.Context) error { return pipeline.Ingest(ctx, js, &request) }); err != nil {
		if broker.IsTransient(err) {
			return fmt.Errorf("ingest: %w (the request may have been stored all the same: ingest with the same --source says whether it is queued)", err)
		}
		return fmt.Errorf("ingest: %w", err)
	}
	fmt.Println(request.Source)
	fmt.Fprintf(os.Stderr, "queued %s as %s; follow it with: personcluster watch --nats %s %s\n", messages.Redacted(request.URI), request.Source, messages.Redacted(client.URL), request.Source)
	return nil
}

// ingestURI makes a local file path absolute, so a reader with another working folder finds
// it; URLs, camera indices and paths that do not exist here pass unchanged.
func ingestURI(uri string) string {
	if vision.IsLiveURI(uri) || filepath.IsAbs(uri) {
		return uri
	}
	if _, err := os.Stat(uri); err != nil {
		return uri
	}
	if abs, err := filepath.Abs(uri); err == nil {
		return abs
	}
	return uri
}

// connectIngest connects and makes sure the streams exist. A deployment that has them keeps
// its own sizing: only a server without them gets the default topology.
func connectIngest(ctx context.Context, client *broker.ClientConfig, retry *jetStreamRetry) (*nats.Conn, jetstream.JetStream, error) {
	nc, js, err := connect(ctx, client, nil)
	if err != nil {
		return nil, nil, err
	}
	lookup := func(ctx context.Context) error {
		_, err := js.Stream(ctx, stage.StreamIngest)
		return err
	}
	err = retry.do(ctx, lookup)
	if errors.Is(err, jetstream.ErrStreamNotFound) && retry.said {
		// A server that has just come back may answer before it has loaded its streams from
		// its store: look once more before creating them.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		err = retry.do(ctx, lookup)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Creating the streams takes longer than a lookup: the tries get WaitJetStream's time.
		err = broker.WaitJetStream(ctx, time.Until(retry.deadline), func(ctx context.Context) error { return (stage.Topology{}).Ensure(ctx, js) })
	}
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("ingest: %w", err)
	}
	return nc, js, nil
}

// jetStreamRetryWait bounds how long a command retries the steps that JetStream left
// unanswered: a cluster that lost a node answers again once the others have elected new
// leaders for its streams, within seconds. jetStreamTry bounds one try: a request that reached
// a node as it died is never answered. Tests change both (so they must not run in parallel).
var (
	jetStreamRetryWait = time.Minute
	jetStreamTry       = 3 * time.Second
)

// jetStreamRetry runs a command's steps, each safe to repeat, again while they fail for want
// of an answer (broker.IsTransient), all of them within one jetStreamRetryWait; any other
// error is a verdict, returned at once. The first retry is said once on stderr, so a wait
// through a failover is not silent.
type jetStreamRetry struct {
	command  string
	deadline time.Time
	said     bool
}

func newJetStreamRetry(command string) *jetStreamRetry {
	return &jetStreamRetry{command: command, deadline: time.Now().Add(jetStreamRetryWait)}
}

func (r *jetStreamRetry) do(ctx context.Context, step func(context.Context) error) error {
	return broker.RetryJetStream(ctx, r.deadline, jetStreamTry, step, func(err error) bool {
		if !broker.IsTransient(err) {
			return false
		}
		if !r.said {
			r.said = true
			fmt.Fprintf(os.Stderr, "personcluster %s: JetStream unavailable (%v); retrying until %s\n", r.command, err, r.deadline.Format(time.TimeOnly))
		}
		return true
	})
}

func cancelSource(ctx context.Context, js jetstream.JetStream, retry *jetStreamRetry, source string) error {
	if err := retry.do(ctx, func(ctx context.Context) error { return reader.Cancel(ctx, js, source) }); err != nil {
		return fmt.Errorf("ingest --cancel: %w", err)
	}
	fmt.Fprintf(os.Stderr, "cancelling %s: its reader stops within a second and reports \"cancelled\" on status.%s\n", source, source)
	return nil
}

func cmdWatch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	client := clientFlags(fs, "personcluster-watch")
	out := fs.String("out", "", "save each final result's folder here")
	untilFinal := fs.Bool("until-final", false, "exit after the source's final result, even one stored before watch started; exit 1 when a dead letter means it will not come")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: personcluster watch [flags] [SOURCE]   (no SOURCE: every source, live only)")
		fs.PrintDefaults()
	}
	httpAddr := fs.String("http", "", "serve the live UI (every source's progress and result pages) on this address (no host: localhost)")
	uiToken := uiTokenFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) > 1 {
		fs.Usage()
		return errUsage
	}
	source := ">"
	if len(rest) == 1 {
		if err := messages.ValidateSourceID(rest[0]); err != nil {
			return err
		}
		source = rest[0]
	}
	nc, js, err := connect(ctx, client, nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	ui, err := serveUI(ctx, *httpAddr, *uiToken, stage.NewRegistry(), logger("warn"))
	if err != nil {
		return err
	}
	ui.follow(ctx, nc, js, logger("warn"))
	statuses := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(messages.SubjectStatus+"."+source, statuses)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	// One source's wait reads what is stored first: its final result may be out already.
	oneSource := source != ">"
	follow, err := stage.Follow(ctx, js, source, *untilFinal && oneSource)
	if err != nil {
		return err
	}
	defer follow.Stop()
	fmt.Fprintf(os.Stderr, "watching %s on %s\n", source, nc.ConnectedUrlRedacted())
	// result prints a result and saves a final one; it reports whether watch is done.
	result := func(v *messages.ClusterResult) (bool, error) {
		printSummary(v, 0)
		if (v.Final || v.Window > 0) && *out != "" { // a live source's windows accumulate
			obj, err := js.ObjectStore(ctx, stage.ImagesBucket)
			if err != nil {
				return true, err
			}
			dir, err := output.Write(*out, v, pipeline.ObjectFetcher(ctx, obj))
			if err != nil {
				return true, err
			}
			fmt.Fprintf(os.Stderr, "wrote %s\n", dir)
		}
		return v.Final && *untilFinal, nil
	}
	for {
		var subject string
		var msg messages.Message
		var err error
		select {
		case <-ctx.Done():
			return nil
		case m := <-statuses:
			subject = m.Subject
			msg, err = messages.Decode(m.Data)
		case ev := <-follow.Events():
			subject, msg, err = ev.Subject, ev.Message, ev.Err
		}
		if err != nil {
			fmt.Printf("%s: undecodable message: %v\n", subject, err)
			continue
		}
		switch v := msg.(type) {
		case *messages.Status:
			if v.Stage == messages.StageClusterer {
				fmt.Printf("%s %-8s %-9s accepted %d faces %d\n", v.Source, v.Stage, v.State, v.FramesAccepted, v.Faces)
				continue
			}
			fmt.Printf("%s %-8s %-9s read %d published %d %s\n", v.Source, v.Stage, v.State, v.FramesRead, v.FramesPublished, v.Reason)
		case *messages.DeadLetter:
			fmt.Printf("%s DEAD at %s: %s\n", v.Source, v.Stage, v.Reason)
			if failed := stage.SourceFailed(v); failed != nil && *untilFinal && oneSource {
				final, err := stage.StoredFinal(ctx, js, source)
				if err != nil || final == nil {
					return errors.Join(failed, err)
				}
				if _, err := result(final); err != nil {
					return err
				}
				return nil
			}
		case *messages.ClusterResult:
			if done, err := result(v); done || err != nil {
				return err
			}
		}
	}
}
