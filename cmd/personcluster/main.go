// Command personcluster tells who appears in a video. See `personcluster help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/pipeline"
)

const usage = `personcluster: who appears in this video?

Usage:
  personcluster run [flags] VIDEO|URL      everything in one process (embedded NATS), print and write the clusters
  personcluster server [flags]             the embedded NATS JetStream server alone
  personcluster reader|detector|encoder|embedder|clusterer --nats URL [flags]
                                           one stage, against a NATS server
  personcluster ingest --nats URL [flags] SOURCE   publish a video source (--cancel ID stops one)
  personcluster watch --nats URL [ID]      follow progress and results (--out DIR saves them)
  personcluster dead list|replay --nats URL [flags]   show dead letters, re-inject them (dead -h)
  personcluster people list|show ID|name ID NAME|merge ID ID|split ID N…|forget ID
                                           the people gallery: identities across results (people -h)
  personcluster cluster [flags] FILE       re-cluster saved fingerprints (scipy-exact)
  personcluster eval --truth TRUTH.json RESULTS.json   score a result against ground truth (--json, --iou)
  personcluster help

Every flag can also be set by an environment variable: --nats-creds is PERSONCLUSTER_NATS_CREDS.
Run 'personcluster COMMAND -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, args)
	case "server":
		err = cmdServer(ctx, args)
	case pipeline.Reader, pipeline.Detector, pipeline.Encoder, pipeline.Embedder, pipeline.Clusterer:
		err = cmdStage(ctx, cmd, args)
	case "ingest":
		err = cmdIngest(ctx, args)
	case "watch":
		err = cmdWatch(ctx, args)
	case "dead":
		err = cmdDead(ctx, args)
	case "people":
		err = cmdPeople(ctx, args)
	case "cluster":
		err = cmdCluster(args)
	case "eval":
		err = cmdEval(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "personcluster: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "personcluster %s: %s\n", cmd, messages.Redacted(err.Error()))
		os.Exit(1)
	}
}
