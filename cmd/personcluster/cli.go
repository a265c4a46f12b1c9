package main

// What every command shares, in both builds (see launcher.go): flag parsing
// and usage errors. Nothing here may import a package that links the media
// libraries.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

var errUsage = errors.New("usage")

// parse parses args, flags wherever they stand among the positional arguments (the flag
// package alone stops at the first positional one: `run VIDEO --json` would not see --json),
// leaving the positional ones, in order, as fs.Args(); a "--" ends the flags. Then it fills
// every flag not given on the command line from PERSONCLUSTER_<FLAG> (upper case, '-' as '_').
// A bad flag prints the error, with the program's prefix, and the usage.
func parse(fs *flag.FlagSet, args []string) error {
	stderr := fs.Output()
	fs.SetOutput(io.Discard) // the flag package's own message lacks the prefix
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			fs.SetOutput(stderr)
			if errors.Is(err, flag.ErrHelp) {
				fs.Usage()
				os.Exit(0)
			}
			fmt.Fprintf(stderr, "personcluster %s: %v\n", fs.Name(), err)
			fs.Usage()
			return errUsage
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	fs.SetOutput(stderr)
	if err := fs.Parse(append([]string{"--"}, positional...)); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := "PERSONCLUSTER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// noArgs refuses positional arguments to a command that takes none (flags after one would
// otherwise be read as more of them and silently ignored).
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "personcluster %s: unexpected argument %q (this command takes flags only)\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
