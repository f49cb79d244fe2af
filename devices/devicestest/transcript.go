package devicestest

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// A transcript file holds exchanges as text, one direction per line, bytes
// in hex; '#' starts a comment:
//
//	# DLE EOT 1..4, all fine
//	w 10 04 01 10 04 02 10 04 03 10 04 04
//	r 12 12 12 12
//
// A "w" line starts an exchange; "r" lines add the device's answer to it
// (or, before any "w", to an exchange where the device speaks first).

// WriteTranscript writes ops in the transcript format.
func WriteTranscript(w io.Writer, comment string, ops []IO) error {
	bw := bufio.NewWriter(w)
	for _, line := range strings.Split(strings.TrimSpace(comment), "\n") {
		fmt.Fprintf(bw, "# %s\n", line)
	}
	for _, op := range ops {
		if len(op.W) > 0 {
			fmt.Fprintf(bw, "w % x\n", op.W)
		}
		if len(op.R) > 0 {
			fmt.Fprintf(bw, "r % x\n", op.R)
		}
	}
	return bw.Flush()
}

// ReadTranscript parses the transcript format.
func ReadTranscript(r io.Reader) ([]IO, error) {
	var ops []IO
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		dir, hexs, _ := strings.Cut(line, " ")
		b, err := hex.DecodeString(strings.ReplaceAll(hexs, " ", ""))
		if err != nil {
			return nil, fmt.Errorf("devicestest: transcript line %d: %w", n, err)
		}
		switch dir {
		case "w":
			ops = append(ops, IO{W: b})
		case "r":
			if len(ops) == 0 || len(ops[len(ops)-1].R) > 0 && len(ops[len(ops)-1].W) == 0 {
				ops = append(ops, IO{})
			}
			ops[len(ops)-1].R = append(ops[len(ops)-1].R, b...)
		default:
			return nil, fmt.Errorf("devicestest: transcript line %d: want 'w' or 'r', got %q", n, dir)
		}
	}
	return ops, sc.Err()
}

// LoadPlayback reads a transcript file into a Playback.
func LoadPlayback(path string) (*Playback, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ops, err := ReadTranscript(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Playback{Ops: ops}, nil
}
