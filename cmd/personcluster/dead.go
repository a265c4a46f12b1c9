//go:build !lean

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/personcluster/personcluster/stages/stage"
)

const deadUsage = `usage: personcluster dead list   [--nats URL] [--stage S] [--source ID] [--json]
       personcluster dead replay [--nats URL] [--keep] SEQ...
       personcluster dead replay [--nats URL] [--stage S] [--source ID] [--keep] --all

list prints the dead letters kept in stream PC_DEAD (inputs a stage could not process, with
the reason); replay re-publishes each one's original bytes to its original subject under a
fresh Nats-Msg-Id, then deletes the dead letter (--keep leaves it). Note: a replayed input
goes to every consumer of its stream (faces.* reaches both encoder and embedder), and outputs
already stored under the same message id within the 10-minute dedupe window are not stored again.
`

func cmdDead(ctx context.Context, args []string) error {
	return runDead(ctx, args, os.Stdout)
}

func runDead(ctx context.Context, args []string, w io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprint(os.Stderr, deadUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("dead "+sub, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), deadUsage)
		fs.PrintDefaults()
	}
	client := clientFlags(fs, "personcluster-dead")
	stageName := fs.String("stage", "", "only this stage's dead letters (reader, detector, encoder, embedder, clusterer)")
	source := fs.String("source", "", "only this source's dead letters (\"_\": those whose source was unknown)")
	jsonOut := fs.Bool("json", false, "list: one JSON object per dead letter and line")
	all := fs.Bool("all", false, "replay: every dead letter matching --stage and --source")
	keep := fs.Bool("keep", false, "replay: keep the dead letters after re-publishing them")
	if err := parse(fs, args); err != nil {
		return err
	}
	filter, err := stage.DeadFilter(*stageName, *source)
	if err != nil {
		return fmt.Errorf("dead: %w", err)
	}
	var seqs []uint64
	for _, a := range fs.Args() {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 || sub == "list" {
			fs.Usage()
			return errUsage
		}
		seqs = append(seqs, n)
	}
	if sub == "replay" && (len(seqs) > 0) == *all {
		fmt.Fprintln(os.Stderr, "dead replay: give the sequences to replay (from `dead list`) or --all")
		return errUsage
	}
	nc, js, err := connect(ctx, client, nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	if sub == "list" || *all {
		entries, err := stage.ListDeadLetters(ctx, js, filter)
		if err != nil {
			return fmt.Errorf("dead: %w", err)
		}
		if sub == "list" {
			return printDead(w, entries, *jsonOut)
		}
		for _, e := range entries {
			seqs = append(seqs, e.Seq)
		}
	}
	var errs []error
	for _, seq := range seqs {
		r, err := stage.ReplayDeadLetter(ctx, js, seq, *keep)
		if err != nil {
			errs = append(errs, fmt.Errorf("dead: %w", err))
			continue
		}
		note := ""
		if r.Duplicate {
			note = " (already replayed within the dedupe window: not stored again)"
		}
		fmt.Fprintf(w, "replayed %d to %s%s\n", seq, r.Subject, note)
	}
	return errors.Join(errs...)
}

func printDead(w io.Writer, entries []stage.DeadEntry, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("dead: %w", err)
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tSTAGE\tSOURCE\tSUBJECT\tTRIES\tBYTES\tREASON")
	for _, e := range entries {
		at := "-"
		if e.AtMillis > 0 {
			at = time.UnixMilli(e.AtMillis).UTC().Format("2006-01-02T15:04:05Z")
		}
		size := strconv.Itoa(e.Bytes)
		if e.Truncated {
			size += " (truncated)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Seq, at, e.Stage, e.Source, e.Subject, e.Deliveries, size,
			strings.ReplaceAll(e.Reason, "\n", " "))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("dead: %w", err)
	}
	fmt.Fprintf(w, "%d dead letters\n", len(entries))
	return nil
}
