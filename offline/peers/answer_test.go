package peers_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/tillpoint/tillpoint/offline/peers"
)

// An answer keeps as many whole events as fit serf's response limit and
// decodes back to them.
func TestAnswerRoundTripFitsResponseLimit(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	var evs [][]byte
	for range 10 {
		r := testRedeem(t, "till-1")
		r.Op[15]++
		ev, err := peers.SignEvent(testStore, r, priv)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev.Raw)
	}
	raw := peers.EncodeAnswer(1234, evs)
	if len(raw) > 800 {
		t.Fatalf("answer of %d bytes, want at most 800 (serf's 1024-byte response limit less framing)", len(raw))
	}
	total, got, err := peers.DecodeAnswer(raw)
	if err != nil {
		t.Fatal(err)
	}
	if total != 1234 || len(got) == 0 || len(got) >= len(evs) {
		t.Fatalf("got total %d and %d events, want 1234 and some but not all of %d", total, len(got), len(evs))
	}
	for i := range got {
		if !bytes.Equal(got[i], evs[i]) {
			t.Errorf("event %d changed in transit", i)
		}
	}
}

func FuzzDecodeAnswer(f *testing.F) {
	f.Add(peers.EncodeAnswer(5, [][]byte{{1, 2, 3}}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 9, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		total, evs, err := peers.DecodeAnswer(raw)
		if err != nil {
			if !errors.Is(err, peers.ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		if total < 0 || len(raw) > 800 {
			t.Fatalf("accepted total %d from %d bytes", total, len(raw))
		}
		for _, ev := range evs {
			if len(ev) > peers.MaxEventLen {
				t.Fatalf("accepted a %d-byte event", len(ev))
			}
		}
		if again := peers.EncodeAnswer(total, evs); !bytes.Equal(again, raw) {
			t.Fatalf("answer does not re-encode to its bytes")
		}
	})
}
