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
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/stage"
)

const peopleUsage = `usage: personcluster people [--nats URL | --store DIR] [--json] list
       personcluster people [flags] show ID [--thumbnail FILE]
       personcluster people [flags] name ID NAME
       personcluster people [flags] merge ID OTHER
       personcluster people [flags] split ID EXEMPLAR...
       personcluster people [flags] forget ID

The people gallery: identities that outlive a result (every cluster of a result carries its
person). list shows everyone; show one person, with its exemplar faces numbered; name gives a
person a name (at most 64 characters, no control characters); merge makes OTHER part of ID
(later faces of either link to ID); split moves the numbered exemplars (from show) to a new
person and keeps the two apart from then on; forget deletes a person's vectors, thumbnail and
face crops everywhere (privacy). --store opens the store folder of 'run --store DIR' when no
server runs on it.
`

func cmdPeople(ctx context.Context, args []string) error {
	return runPeople(ctx, args, os.Stdout)
}

func runPeople(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("people", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), peopleUsage)
		fs.PrintDefaults()
	}
	client := clientFlags(fs, "personcluster-people")
	store := fs.String("store", "", "open this JetStream store folder in-process instead of connecting to --nats")
	jsonOut := fs.Bool("json", false, "list, show: JSON")
	thumbnail := fs.String("thumbnail", "", "show: write the person's thumbnail JPEG to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errUsage
	}
	sub, rest := rest[0], rest[1:]
	want := map[string]func(n int) bool{
		"list": func(n int) bool { return n == 0 }, "show": func(n int) bool { return n == 1 }, "name": func(n int) bool { return n == 2 },
		"merge": func(n int) bool { return n == 2 }, "split": func(n int) bool { return n >= 2 }, "forget": func(n int) bool { return n == 1 },
	}
	if ok := want[sub]; ok == nil || !ok(len(rest)) {
		fs.Usage()
		return errUsage
	}
	// Checked before connecting: bad input fails at once and changes nothing.
	if sub != "list" {
		if err := people.ValidateID(rest[0]); err != nil {
			return err
		}
	}
	var exemplars []int
	switch sub {
	case "name":
		if err := people.ValidateName(rest[1]); err != nil {
			return err
		}
	case "merge":
		if err := people.ValidateID(rest[1]); err != nil {
			return err
		}
	case "split":
		for _, a := range rest[1:] {
			n, err := strconv.Atoi(a)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: split: %q is not an exemplar number (see people show %s)", people.ErrBadRequest, a, rest[0])
			}
			exemplars = append(exemplars, n)
		}
	}
	g, done, err := openGallery(ctx, client, *store)
	if err != nil {
		return err
	}
	defer done()
	switch sub {
	case "list":
		ps, err := g.List(ctx)
		if err != nil {
			return err
		}
		return printPeople(w, ps, *jsonOut)
	case "show":
		p, mergedInto, err := g.Get(ctx, rest[0])
		if err != nil {
			return err
		}
		apart, err := g.CannotLink(ctx, p.ID)
		if err != nil {
			return err
		}
		if *thumbnail != "" {
			data, err := g.Thumbnail(ctx, p)
			if err != nil {
				return err
			}
			if data == nil {
				return fmt.Errorf("people: %s has no thumbnail", p.ID)
			}
			if err := os.WriteFile(*thumbnail, data, 0o644); err != nil {
				return fmt.Errorf("people: %w", err)
			}
		}
		return printPerson(w, p, mergedInto, apart, *jsonOut)
	case "name":
		if err := g.Rename(ctx, rest[0], rest[1]); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s is now %q\n", rest[0], rest[1])
	case "merge":
		if err := g.Merge(ctx, rest[0], rest[1]); err != nil {
			return err
		}
		fmt.Fprintf(w, "merged %s into %s\n", rest[1], rest[0])
	case "split":
		id, err := g.Split(ctx, rest[0], exemplars)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "split %d exemplars of %s into %s; the two are kept apart from now on\n", len(exemplars), rest[0], id)
	case "forget":
		n, err := g.Forget(ctx, rest[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "forgot %s: vectors, thumbnail and %d face crops deleted\n", rest[0], n)
	}
	return nil
}

// openGallery connects to the deployment (or opens a store folder in-process) and opens the
// gallery; done closes what it opened.
func openGallery(ctx context.Context, client *broker.ClientConfig, store string) (*people.Gallery, func(), error) {
	var nc *nats.Conn
	var js jetstream.JetStream
	var closers []func()
	done := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if store != "" {
		if st, err := os.Stat(store); err != nil || !st.IsDir() {
			return nil, nil, fmt.Errorf("people: --store %s: not a store folder (personcluster run --store DIR makes one)", store)
		}
		srv, err := broker.StartServer(broker.ServerConfig{StoreDir: store, InProcessOnly: true})
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, srv.Stop)
		if nc, err = srv.Connect("personcluster-people"); err != nil {
			done()
			return nil, nil, err
		}
		closers = append(closers, nc.Close)
		if js, err = broker.JetStream(nc); err != nil {
			done()
			return nil, nil, err
		}
	} else {
		var err error
		if nc, js, err = connect(ctx, client, nil); err != nil {
			return nil, nil, err
		}
		closers = append(closers, nc.Close)
	}
	g, err := people.Open(ctx, js)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		if store == "" {
			// A deployment's topology is its admin's (replicas, limits): never made from here.
			err = fmt.Errorf("people: this deployment has no people gallery yet (start personcluster server or a stage with --ensure once): %w", err)
		} else if err = (stage.Topology{}).Ensure(ctx, js); err == nil {
			// A store of one process that predates the gallery: add its buckets.
			g, err = people.Open(ctx, js)
		}
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	return g, done, nil
}

func printPeople(w io.Writer, ps []*people.Person, asJSON bool) error {
	if asJSON {
		if ps == nil {
			ps = []*people.Person{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(ps)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PERSON\tNAME\tFACES\tSOURCES\tFIRST SEEN\tLAST SEEN")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", p.ID, p.Name, p.Faces(), len(p.Sources), sighting(p.First), sighting(p.Last))
	}
	return tw.Flush()
}

func sighting(s people.Sighting) string {
	if s.AtMillis == 0 {
		return "-"
	}
	return fmt.Sprintf("%s frame %d (%s)", s.Source, s.Frame, time.UnixMilli(s.AtMillis).Format("2006-01-02 15:04"))
}

func printPerson(w io.Writer, p *people.Person, mergedInto string, apart []string, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*people.Person
			Faces      int64    `json:"faces"`
			MergedFrom string   `json:"merged_from,omitempty"`
			CannotLink []string `json:"cannot_link,omitempty"`
		}{p, p.Faces(), mergedInto, apart})
	}
	if mergedInto != "" {
		fmt.Fprintf(w, "(merged into %s)\n", mergedInto)
	}
	name := p.Name
	if name == "" {
		name = "(no name)"
	}
	fmt.Fprintf(w, "person %s %s: %d faces, %d clusters linked\nfirst seen %s\nlast seen  %s\n", p.ID, name, p.Faces(), p.Links, sighting(p.First), sighting(p.Last))
	if p.Thumbnail != "" {
		fmt.Fprintf(w, "thumbnail  %s (people show %s --thumbnail FILE)\n", p.Thumbnail, p.ID)
	}
	if len(apart) > 0 {
		fmt.Fprintf(w, "kept apart from %v\n", apart)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tFACES")
	for src, n := range p.Sources {
		fmt.Fprintf(tw, "%s\t%d\n", src, n)
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EXEMPLAR\tMODEL\tSOURCE\tFRAME\tCROP")
	for k, e := range p.Exemplars {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\n", k, e.Model, e.Source, e.Frame, e.Image)
	}
	return tw.Flush()
}

// personLabel is a cluster's person as the summary table shows it: id and name.
func personLabel(c messages.Cluster) string {
	switch {
	case c.Person == "":
		return "-"
	case c.Name != "":
		return c.Person + " " + strconv.Quote(c.Name)
	}
	return c.Person
}
