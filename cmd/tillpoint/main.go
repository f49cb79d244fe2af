// Command tillpoint is the one binary of the tillpoint loyalty system: the
// store terminal's agent, the central cloud ledger, and the operator tools
// around them (journal inspection, device discovery, enrollment, a demo).
//
// Each subcommand lives in a file of its own and parses its own flags with
// flag.NewFlagSet(name, flag.ContinueOnError). Main is a type so tests can
// run the real program in process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	m := NewMain()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := m.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// Main is the tillpoint program: its standard streams and environment.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// NewMain returns a Main wired to the process's streams and environment.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// errUsage marks an error in how the command was called; Run exits 2 for it.
var errUsage = errors.New("usage")

// usageError reports a wrong invocation with the hint the operator needs.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// command is one subcommand: its name, a one-line summary, and what runs it.
type command struct {
	name    string
	summary string
	run     func(m *Main, ctx context.Context, args []string) error
}

func (m *Main) commands() []command {
	return []command{
		{"version", "print the version", (*Main).runVersion},
		{"journal", "inspect and verify a terminal's journal (stats, list, verify, export)", (*Main).runJournal},
		{"devices", "list attached scanners, NFC readers and printers, or watch them live", (*Main).runDevices},
		{"receipt", "preview a receipt's loyalty block: receipt preview --in FILE", (*Main).runReceipt},
		{"cloud", "run the central ledger; enroll-code, revoke, check", (*Main).runCloud},
		{"enroll", "enroll this terminal with the cloud", (*Main).runEnroll},
		{"agent", "run the store terminal's agent: devices, local API, cashier screen", (*Main).runAgent},
		{"members", "list the store's terminals and their state, as the local agent sees them", (*Main).runMembers},
		{"demo", "run a whole store in one process through a scripted day; --exit checks every invariant", (*Main).runDemo},
	}
}

// Run runs the subcommand named by args[0] and returns the exit code:
// 0 on success, 1 on failure, 2 on a usage error.
func (m *Main) Run(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		m.usage(m.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range m.commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(m, ctx, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, errHelpShown):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(m.Stderr, "tillpoint %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(m.Stderr, "tillpoint %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(m.Stderr, "tillpoint: unknown command %q; run 'tillpoint --help' for the list\n", args[0])
	return 2
}

func (m *Main) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: tillpoint <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Loyalty points at the till that keep working when the network does not.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range m.commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'tillpoint <command> --help' for a command's flags.")
}

func (m *Main) runVersion(_ context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "version", "version", "Prints the version of this tillpoint binary.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("version takes no arguments")
	}
	fmt.Fprintf(m.Stdout, "tillpoint %s\n", Version)
	return nil
}
