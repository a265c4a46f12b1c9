// Command personcluster tells who appears in a video. See `personcluster help`.
//
// It builds two ways. The plain build runs every command itself. Built with
// the lean tag (`make build` does both), it links only what `cluster` and
// `eval` need and hands every other command to the plain build, installed
// beside it as personcluster-media (launcher.go): the 266 shared libraries
// that OpenCV, dlib and onnxruntime pull in take the dynamic loader ~0.2 s
// at every start, longer than `eval` runs and a tenth of `cluster`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/personcluster/personcluster/messages"
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

// commands are every command's name; all but cluster, eval and help are
// the media build's (runMedia).
var commands = []string{"run", "server", "reader", "detector", "encoder", "embedder", "clusterer",
	"ingest", "watch", "dead", "people", "cluster", "eval", "help"}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch {
	case cmd == "cluster":
		err = cmdCluster(args)
	case cmd == "eval":
		err = cmdEval(args)
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Print(usage)
		return
	case slices.Contains(commands, cmd):
		err = runMedia(ctx, cmd, args)
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
