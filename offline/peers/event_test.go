package peers_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/peers"
)

func testRedeem(t testing.TB, terminal string) peers.PeerRedeem {
	t.Helper()
	at := time.Date(2026, 11, 23, 14, 0, 0, 123_000_000, time.UTC)
	id, err := loyalty.NewOpID(at, bytes.NewReader(bytes.Repeat([]byte{0x5a}, 10)))
	if err != nil {
		t.Fatal(err)
	}
	return peers.PeerRedeem{Op: id, Card: testCard(t, "2012345678903"), Points: 250, Terminal: terminal, Epoch: 3, Seq: 1_000_042, At: at}
}

func testKeys(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// Events must fit serf's 512-byte user event limit with the event name and
// serf's framing, even with the longest terminal ID.
func TestEventFitsSerfUserEventLimit(t *testing.T) {
	_, priv := testKeys(t)
	r := testRedeem(t, strings.Repeat("t", peers.MaxTerminalLen))
	ev, err := peers.SignEvent(testStore, r, priv)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Raw) != peers.MaxEventLen {
		t.Errorf("longest event: got %d bytes, want MaxEventLen %d", len(ev.Raw), peers.MaxEventLen)
	}
	// serf counts name+payload before encoding and the msgpack message
	// after; leave a wide margin for the latter.
	if n := len(peers.EventName) + len(ev.Raw); n > 512-64 {
		t.Errorf("event name + payload: got %d bytes, want at most %d", n, 512-64)
	}
}

func TestEventRoundTripAndVerify(t *testing.T) {
	pub, priv := testKeys(t)
	roster, err := peers.NewRoster(peers.Terminal{ID: "till-1", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	r := testRedeem(t, "till-1")
	ev, err := peers.SignEvent(testStore, r, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := peers.VerifyEvent(testStore, roster, ev.Raw)
	if err != nil {
		t.Fatalf("verify a good event: %v", err)
	}
	if got != r {
		t.Errorf("round trip: got %+v, want %+v", got, r)
	}
}

// Invariant 6 on the store network: an event counts only when the roster's
// key for the terminal it names signed exactly these bytes for this store.
func TestForgedEventsAreRejected(t *testing.T) {
	pub, priv := testKeys(t)
	_, otherPriv := testKeys(t)
	roster, err := peers.NewRoster(peers.Terminal{ID: "till-1", PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	good, err := peers.SignEvent(testStore, testRedeem(t, "till-1"), priv)
	if err != nil {
		t.Fatal(err)
	}
	forgedKey, _ := peers.SignEvent(testStore, testRedeem(t, "till-1"), otherPriv)
	unknown, _ := peers.SignEvent(testStore, testRedeem(t, "till-9"), priv)
	otherStore, _ := peers.SignEvent("store-043", testRedeem(t, "till-1"), priv)
	tampered := bytes.Clone(good.Raw)
	tampered[1+32+16+7] ^= 0x01 // points 250 -> 251
	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"signed by a key not in the roster", forgedKey.Raw, peers.ErrBadSignature},
		{"terminal not in the roster", unknown.Raw, peers.ErrUnknownTerminal},
		{"signed for another store", otherStore.Raw, peers.ErrBadSignature},
		{"points changed after signing", tampered, peers.ErrBadSignature},
		{"truncated", good.Raw[:len(good.Raw)-1], peers.ErrMalformed},
		{"empty", nil, peers.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := peers.VerifyEvent(testStore, roster, tc.raw)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeEventIsStrict(t *testing.T) {
	_, priv := testKeys(t)
	good, err := peers.SignEvent(testStore, testRedeem(t, "till-1"), priv)
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good.Raw)) }
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"unknown version", mut(func(b []byte) []byte { b[0] = 2; return b })},
		{"zero points", mut(func(b []byte) []byte { copy(b[49:57], make([]byte, 8)); return b })},
		{"negative points", mut(func(b []byte) []byte { b[49] = 0x80; return b })},
		{"points beyond one op's bound", mut(func(b []byte) []byte { binary.BigEndian.PutUint64(b[49:57], uint64(loyalty.MaxOpPoints)+1); return b })},
		{"zero time", mut(func(b []byte) []byte { copy(b[69:77], make([]byte, 8)); return b })},
		{"terminal length past the end", mut(func(b []byte) []byte { b[77] = 60; return b })},
		{"empty terminal", mut(func(b []byte) []byte { b[77] = 0; return append(b[:78], b[84:]...) })},
		{"space in terminal", mut(func(b []byte) []byte { b[78] = ' '; return b })},
		{"zero op id", mut(func(b []byte) []byte { copy(b[33:49], make([]byte, 16)); return b })},
		{"zero card", mut(func(b []byte) []byte { copy(b[1:33], make([]byte, 32)); return b })},
		{"trailing byte", append(bytes.Clone(good.Raw), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := peers.DecodeEvent(tc.raw); !errors.Is(err, peers.ErrMalformed) {
				t.Errorf("got %+v, %v; want ErrMalformed", r, err)
			}
		})
	}
}

func TestRedeemFromOp(t *testing.T) {
	at := time.Date(2026, 11, 23, 14, 0, 0, 123_456_789, time.UTC)
	id, err := loyalty.NewOpID(at, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	card := testCard(t, "2012345678903")
	op := loyalty.Op{ID: id, Kind: loyalty.OpRedeem, Terminal: "till-1", Epoch: 2, Seq: 9, WallTime: at, Card: card, Points: -40, Offline: true}
	r, err := peers.RedeemFromOp(&op)
	if err != nil {
		t.Fatal(err)
	}
	want := peers.PeerRedeem{Op: id, Card: card, Points: 40, Terminal: "till-1", Epoch: 2, Seq: 9, At: at.Truncate(time.Millisecond).UTC()}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
	online := op
	online.Offline = false
	earn := op
	earn.Kind = loyalty.OpEarn
	for name, o := range map[string]loyalty.Op{"online redeem": online, "earn": earn} {
		if _, err := peers.RedeemFromOp(&o); !errors.Is(err, peers.ErrNotOfflineRedeem) {
			t.Errorf("%s: got %v, want ErrNotOfflineRedeem", name, err)
		}
	}
}

func TestNewRosterRejectsBadEntries(t *testing.T) {
	pub, _ := testKeys(t)
	for _, tc := range []struct {
		name  string
		terms []peers.Terminal
	}{
		{"empty id", []peers.Terminal{{ID: "", PublicKey: pub}}},
		{"short key", []peers.Terminal{{ID: "till-1", PublicKey: pub[:31]}}},
		{"duplicate", []peers.Terminal{{ID: "till-1", PublicKey: pub}, {ID: "till-1", PublicKey: pub}}},
		{"long id", []peers.Terminal{{ID: strings.Repeat("x", peers.MaxTerminalLen+1), PublicKey: pub}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := peers.NewRoster(tc.terms...); !errors.Is(err, peers.ErrConfig) {
				t.Errorf("got %v, want ErrConfig", err)
			}
		})
	}
}

func FuzzDecodeEvent(f *testing.F) {
	pub, priv, err := ed25519.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{1}, 64)))
	if err != nil {
		f.Fatal(err)
	}
	roster, err := peers.NewRoster(peers.Terminal{ID: "till-1", PublicKey: pub})
	if err != nil {
		f.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	id, _ := loyalty.NewOpID(at, bytes.NewReader(make([]byte, 10)))
	var card loyalty.CardHash
	card[0] = 1
	ev, err := peers.SignEvent(testStore, peers.PeerRedeem{Op: id, Card: card, Points: 1, Terminal: "till-1", Seq: 1, At: at}, priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ev.Raw)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := peers.DecodeEvent(raw)
		if err != nil {
			if !errors.Is(err, peers.ErrMalformed) {
				t.Fatalf("decode error not ErrMalformed: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded an invalid redeem %+v: %v", r, err)
		}
		if r.Points <= 0 || len(r.Terminal) == 0 || len(raw) > peers.MaxEventLen {
			t.Fatalf("decoded out-of-range redeem %+v from %d bytes", r, len(raw))
		}
		// A verified event re-signs to the same bytes: nothing unsigned rides along.
		if v, err := peers.VerifyEvent(testStore, roster, raw); err == nil {
			again, err := peers.SignEvent(testStore, v, priv)
			if err != nil || !bytes.Equal(again.Raw, raw) {
				t.Fatalf("verified event does not re-encode to its bytes: %v", err)
			}
		}
	})
}
