//go:build !lean

package main

import (
	"context"
	"fmt"

	"github.com/personcluster/personcluster/stages/pipeline"
)

// runMedia runs the commands that need the media libraries, or a NATS
// connection: this build has them all.
func runMedia(ctx context.Context, cmd string, args []string) error {
	switch cmd {
	case "run":
		return cmdRun(ctx, args)
	case "server":
		return cmdServer(ctx, args)
	case pipeline.Reader, pipeline.Detector, pipeline.Encoder, pipeline.Embedder, pipeline.Clusterer:
		return cmdStage(ctx, cmd, args)
	case "ingest":
		return cmdIngest(ctx, args)
	case "watch":
		return cmdWatch(ctx, args)
	case "dead":
		return cmdDead(ctx, args)
	case "people":
		return cmdPeople(ctx, args)
	}
	return fmt.Errorf("no such command in this build (it is in the commands list)")
}
