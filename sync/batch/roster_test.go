package batch_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/tillpoint/tillpoint/sync/batch"
)

func rosterDoc() *batch.RosterDoc {
	return &batch.RosterDoc{Store: "S1", Version: 3, Issued: t0, Terminal: "T1", Terminals: []batch.RosterTerminal{
		{ID: "T1", Addr: "10.0.0.1:7946", PublicKey: key(1).Public().(ed25519.PublicKey)},
		{ID: "T2", PublicKey: key(2).Public().(ed25519.PublicKey), Revoked: true},
	}}
}

// Invariant 6: a roster the cloud did not sign, or signed for another
// program, is refused; the signed one opens unchanged.
func TestRosterOpensOnlyWithTheCloudsSignature(t *testing.T) {
	cloud := signer(t, batch.CloudSigner, 9)
	sealed, err := cloud.SealRoster(rosterDoc())
	if err != nil {
		t.Fatal(err)
	}
	got, err := batch.OpenRoster(sealed, program, cloud.Public())
	if err != nil {
		t.Fatalf("OpenRoster: %v", err)
	}
	if got.Store != "S1" || got.Version != 3 || len(got.Terminals) != 2 || !got.Terminals[1].Revoked || got.Terminals[0].Addr != "10.0.0.1:7946" {
		t.Errorf("OpenRoster = %+v, want the sealed document back", got)
	}
	forger := signer(t, batch.CloudSigner, 8)
	forged, err := forger.SealRoster(rosterDoc())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := batch.OpenRoster(forged, program, cloud.Public()); !errors.Is(err, batch.ErrSignature) {
		t.Errorf("a roster signed by another key: %v, want ErrSignature", err)
	}
	if _, err := batch.OpenRoster(sealed, "other-program", cloud.Public()); err == nil {
		t.Errorf("a roster of another program opened")
	}
	term := signer(t, "T1", 1)
	byTerminal, err := term.SealRoster(rosterDoc())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := batch.OpenRoster(byTerminal, program, term.Public()); !errors.Is(err, batch.ErrKeyMismatch) {
		t.Errorf("a roster signed by a terminal: %v, want ErrKeyMismatch", err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 1
	if _, err := batch.OpenRoster(flipped, program, cloud.Public()); err == nil {
		t.Errorf("a roster with a flipped byte opened")
	}
}

// Secrets open only with the terminal's X25519 key, for that terminal.
func TestSecretsOpenOnlyForTheirTerminal(t *testing.T) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &batch.Secrets{CardKey: bytes.Repeat([]byte{7}, 32), GossipKeys: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}}
	box, err := batch.SealSecrets(priv.PublicKey(), program, "T1", s)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(box, s.CardKey) || bytes.Contains(box, s.GossipKeys[0]) {
		t.Fatalf("the sealed box holds a secret in the clear")
	}
	got, err := batch.OpenSecrets(priv, program, "T1", box)
	if err != nil {
		t.Fatalf("OpenSecrets: %v", err)
	}
	if !bytes.Equal(got.CardKey, s.CardKey) || len(got.GossipKeys) != 2 || !bytes.Equal(got.GossipKeys[1], s.GossipKeys[1]) {
		t.Errorf("OpenSecrets = %+v, want what was sealed", got)
	}
	other, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, err := batch.OpenSecrets(other, program, "T1", box); !errors.Is(err, batch.ErrSignature) {
		t.Errorf("open with another key: %v, want ErrSignature", err)
	}
	if _, err := batch.OpenSecrets(priv, program, "T2", box); !errors.Is(err, batch.ErrSignature) {
		t.Errorf("open as another terminal: %v, want ErrSignature", err)
	}
	if _, err := batch.SealSecrets(priv.PublicKey(), program, "T1", &batch.Secrets{GossipKeys: [][]byte{{1, 2}}}); err == nil {
		t.Errorf("sealed a 2-byte gossip key")
	}
}
