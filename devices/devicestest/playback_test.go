package devicestest_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/devices/devicestest"
)

func TestPlaybackAnswersAndFailsOnMissedExchange(t *testing.T) {
	p := &devicestest.Playback{Ops: []devicestest.IO{
		{W: []byte{0x10, 0x04, 0x01}, R: []byte{0x16}},
		{W: []byte{0x1d, 0x72, 0x01}, R: []byte{0x00}},
	}}
	if _, err := p.Write([]byte{0x10, 0x04}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte{0x01}); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	n, err := p.Read(b)
	if err != nil || !bytes.Equal(b[:n], []byte{0x16}) {
		t.Fatalf("Read = % x, %v; want 16", b[:n], err)
	}
	if err := p.Close(); err == nil {
		t.Fatal("Close with an exchange not made = nil, want an error")
	}
}

func TestPlaybackRejectsWrongWrite(t *testing.T) {
	p := &devicestest.Playback{Ops: []devicestest.IO{{W: []byte("AB")}}}
	if _, err := p.Write([]byte("AC")); err == nil {
		t.Fatal("Write of wrong bytes = nil error, want a mismatch")
	}
	if err := p.Close(); err == nil {
		t.Fatal("Close after a mismatch = nil, want the mismatch")
	}
}

func TestPlaybackUnsolicitedReadsThenTimeout(t *testing.T) {
	p := &devicestest.Playback{Ops: []devicestest.IO{{R: []byte("]E04006381333931\r")}}}
	_ = p.SetReadTimeout(5 * time.Millisecond)
	got, _ := io.ReadAll(io.LimitReader(p, 17))
	if string(got) != "]E04006381333931\r" {
		t.Fatalf("read %q", got)
	}
	if n, err := p.Read(make([]byte, 8)); n != 0 || err != nil {
		t.Fatalf("Read past the end = %d, %v; want 0, nil (timeout)", n, err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
}

func TestRecordReplaysAsPlayback(t *testing.T) {
	dev := &devicestest.Playback{Ops: []devicestest.IO{{W: []byte{1, 2}, R: []byte{3}}, {W: []byte{4}, R: []byte{5, 6}}}}
	r := &devicestest.Record{Conn: dev}
	b := make([]byte, 4)
	_, _ = r.Write([]byte{1})
	_, _ = r.Write([]byte{2})
	_, _ = r.Read(b)
	_, _ = r.Write([]byte{4})
	_, _ = io.ReadFull(r, b[:2])
	ops := r.Ops()
	if len(ops) != 2 || !bytes.Equal(ops[0].W, []byte{1, 2}) || !bytes.Equal(ops[1].R, []byte{5, 6}) {
		t.Fatalf("recorded %v, want the two exchanges", ops)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTranscriptRoundTrip(t *testing.T) {
	ops := []devicestest.IO{{R: []byte("]E0123\r")}, {W: []byte{0x10, 0x04, 0x01}, R: []byte{0x12}}, {W: []byte("hi")}}
	var buf bytes.Buffer
	if err := devicestest.WriteTranscript(&buf, "a test\ntwo lines", ops); err != nil {
		t.Fatal(err)
	}
	got, err := devicestest.ReadTranscript(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ops) {
		t.Fatalf("read %d exchanges, want %d", len(got), len(ops))
	}
	for i := range ops {
		if !bytes.Equal(got[i].W, ops[i].W) || !bytes.Equal(got[i].R, ops[i].R) {
			t.Errorf("exchange %d = %+v, want %+v", i, got[i], ops[i])
		}
	}
	if _, err := devicestest.ReadTranscript(strings.NewReader("x 00\n")); err == nil {
		t.Error("a bad direction parsed without error")
	}
}
