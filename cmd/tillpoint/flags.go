package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelpShown is returned when --help printed a command's usage; Run exits 0.
var errHelpShown = errors.New("help shown")

// newFlagSet returns a flag set for a subcommand whose --help prints the
// synopsis, the description and the flags to out.
func newFlagSet(out io.Writer, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: tillpoint %s\n\n%s\n", synopsis, strings.TrimSpace(description))
		var hasFlags bool
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(out, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args, turning --help into errHelpShown and a bad flag
// into a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelpShown
		}
		return fmt.Errorf("%w: %v (see 'tillpoint %s --help')", errUsage, err, fs.Name())
	}
	return nil
}

// parseFlagsOnly is parseFlags for a command that takes nothing but
// flags: a stray argument (a value whose flag was forgotten, as in
// 'cloud check sqlite:x.db') is a usage error, not ignored.
func parseFlagsOnly(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q; every value goes with a flag (see 'tillpoint %s --help')", fs.Arg(0), fs.Name())
	}
	return nil
}
