package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// run executes the real program in process and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runWith(t, "", nil, args...)
}

// runWith is run with the given standard input and environment.
func runWith(t *testing.T, stdin string, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	code = m.Run(context.Background(), args)
	return code, out.String(), errOut.String()
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"no command prints usage and exits 2", nil, 2, "Usage: tillpoint <command>"},
		{"--help lists the commands", []string{"--help"}, 0, "version"},
		{"unknown command says what to type", []string{"bogus"}, 2, "tillpoint --help"},
		{"version", []string{"version"}, 0, "tillpoint dev"},
		{"command --help exits 0", []string{"version", "--help"}, 0, "Usage: tillpoint version"},
		{"bad flag is a usage error", []string{"version", "--nope"}, 2, "see 'tillpoint version --help'"},
		{"extra argument is a usage error", []string{"version", "x"}, 2, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			if !strings.Contains(out+errOut, tt.wantOut) {
				t.Errorf("output %q does not contain %q", out+errOut, tt.wantOut)
			}
		})
	}
}
