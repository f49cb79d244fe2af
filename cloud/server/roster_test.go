package server_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/server"
	"github.com/tillpoint/tillpoint/sync/batch"
)

var testCardKey = bytes.Repeat([]byte{0xc4}, 32)

func withCardKey(s *server.Server) { s.CardKey = testCardKey }

// getRoster fetches tm's roster with its secrets sealed to box.
func getRoster(t testing.TB, ts *testServer, tm *terminal, box *ecdh.PrivateKey) (*batch.RosterDoc, *batch.Secrets) {
	t.Helper()
	path := "/v1/roster?" + server.QueryBoxKey + "=" + base64.RawURLEncoding.EncodeToString(box.PublicKey().Bytes())
	status, _, body := send(t, signedGet(t, ts, tm, path, ts.clock.Now()))
	if status != http.StatusOK {
		t.Fatalf("GET /v1/roster: %d %s", status, body)
	}
	doc, err := batch.OpenRoster(body, testProgram, ts.Key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("open roster: %v", err)
	}
	sec, err := batch.OpenSecrets(box, testProgram, tm.id, doc.Secrets)
	if err != nil {
		t.Fatalf("open secrets: %v", err)
	}
	return doc, sec
}

func boxKey(t testing.TB) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Invariant 4 rests on every till knowing its store's terminals: the
// enrollment reply and GET /v1/roster carry the roster (the caller's store
// only) signed by the cloud, and the card key and gossip keyring sealed to
// the caller, never in the clear and never in the log.
func TestEnrollmentAndRosterHandOutTheStoresRosterAndSecrets(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, withCardKey)
	box := boxKey(t)
	code := createCode(t, ts, "S1", "T1", 0)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	req := batch.EnrollRequest{Code: code, PublicKey: pub, Proof: ed25519.Sign(priv, batch.EnrollProofMessage(code, pub)),
		Advertise: "192.168.1.21:7946", BoxKey: box.PublicKey().Bytes()}
	status, _, body := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", mustJSON(t, req))
	if status != http.StatusCreated {
		t.Fatalf("enroll: %d %s", status, body)
	}
	var reply batch.EnrollResponse
	if err := json.Unmarshal(body, &reply); err != nil {
		t.Fatal(err)
	}
	doc, err := batch.OpenRoster(reply.Roster, testProgram, ts.Key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatalf("the enrollment's roster does not open: %v", err)
	}
	if doc.Store != "S1" || doc.Terminal != "T1" || len(doc.Terminals) != 1 || doc.Terminals[0].Addr != "192.168.1.21:7946" || !doc.Terminals[0].PublicKey.Equal(pub) {
		t.Fatalf("enrollment roster %+v, want T1 of S1 with its key and address", doc)
	}
	sec, err := batch.OpenSecrets(box, testProgram, "T1", doc.Secrets)
	if err != nil {
		t.Fatalf("open the enrollment's secrets: %v", err)
	}
	if !bytes.Equal(sec.CardKey, testCardKey) || len(sec.GossipKeys) != 1 || len(sec.GossipKeys[0]) != 32 {
		t.Fatalf("secrets: card key %t, %d gossip keys; want the card key and one 32-byte gossip key", bytes.Equal(sec.CardKey, testCardKey), len(sec.GossipKeys))
	}
	if bytes.Contains(body, testCardKey) || bytes.Contains(body, sec.GossipKeys[0]) {
		t.Errorf("the enrollment reply carries a secret in the clear")
	}

	t1 := &terminal{id: "T1", store: "S1", key: priv}
	t2 := enroll(t, ts, "S1", "T2")
	enroll(t, ts, "S2", "T3")
	doc2, sec2 := getRoster(t, ts, t1, boxKey(t))
	if doc2.Version <= doc.Version || len(doc2.Terminals) != 2 || doc2.Terminals[1].ID != "T2" || !doc2.Terminals[1].PublicKey.Equal(t2.key.Public().(ed25519.PublicKey)) {
		t.Errorf("roster after T2 enrolled: version %d (was %d), %d terminals; want T1 and T2 of S1 only, newer", doc2.Version, doc.Version, len(doc2.Terminals))
	}
	if !bytes.Equal(sec2.GossipKeys[0], sec.GossipKeys[0]) {
		t.Errorf("the store's gossip key changed when T2 enrolled")
	}
	if logs := ts.logs.String(); bytes.Contains([]byte(logs), []byte(base64.StdEncoding.EncodeToString(sec.GossipKeys[0]))) ||
		bytes.Contains([]byte(logs), []byte(base64.StdEncoding.EncodeToString(testCardKey))) {
		t.Errorf("the server log holds a secret")
	}

	// A revoked terminal is marked in the roster and gets none itself.
	if status, _, body := do(t, "POST", ts.url+"/v1/admin/terminals/T2/revoke", "", "Bearer "+testAdminToken, nil); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
	doc3, _ := getRoster(t, ts, t1, boxKey(t))
	if !doc3.Terminals[1].Revoked || doc3.Version <= doc2.Version {
		t.Errorf("roster after revoking T2: revoked %t, version %d; want T2 revoked and a newer version", doc3.Terminals[1].Revoked, doc3.Version)
	}
	status, h, body := send(t, signedGet(t, ts, t2, "/v1/roster", ts.clock.Now()))
	wantProblem(t, status, h, body, http.StatusForbidden, server.CodeTerminalRevoked)
}

// Invariant 6: an unsigned request gets no roster; a bad box key or a bad
// advertise address is a clear 400.
func TestRosterRefusesUnsignedAndMalformedRequests(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, withCardKey)
	tm := enroll(t, ts, "S1", "T1")
	status, h, body := do(t, "GET", ts.url+"/v1/roster", "", "", nil)
	wantProblem(t, status, h, body, http.StatusUnauthorized, server.CodeUnauthorized)
	status, h, body = send(t, signedGet(t, ts, tm, "/v1/roster?box=not-a-key", ts.clock.Now()))
	wantProblem(t, status, h, body, http.StatusBadRequest, server.CodeInvalidRequest)
	// Without a box key, the roster comes without secrets.
	status, _, body = send(t, signedGet(t, ts, tm, "/v1/roster", ts.clock.Now()))
	if status != http.StatusOK {
		t.Fatalf("GET /v1/roster without box: %d %s", status, body)
	}
	if doc, err := batch.OpenRoster(body, testProgram, ts.Key.Public().(ed25519.PublicKey)); err != nil || len(doc.Secrets) != 0 {
		t.Errorf("roster without a box key: %v, %d bytes of secrets; want none", err, len(doc.Secrets))
	}

	code := createCode(t, ts, "S1", "T2", 0)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	req := batch.EnrollRequest{Code: code, PublicKey: pub, Proof: ed25519.Sign(priv, batch.EnrollProofMessage(code, pub)), Advertise: "till-2:7946"}
	status, h, body = do(t, "POST", ts.url+"/v1/enroll", "application/json", "", mustJSON(t, req))
	wantProblem(t, status, h, body, http.StatusBadRequest, server.CodeInvalidRequest)
	req.Advertise = "10.0.0.2:7946"
	if status, _, body := do(t, "POST", ts.url+"/v1/enroll", "application/json", "", mustJSON(t, req)); status != http.StatusCreated {
		t.Errorf("the code was spent by a refused request: %d %s", status, body)
	}
}

// A rotation through the admin API hands out the new primary first and
// keeps the old key for the grace period; finishing drops it.
func TestGossipKeyRotationThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, withCardKey)
	tm := enroll(t, ts, "S1", "T1")
	_, before := getRoster(t, ts, tm, boxKey(t))
	status, _, body := do(t, "POST", ts.url+"/v1/admin/stores/S1/gossip-key", "application/json", "Bearer "+testAdminToken, []byte(`{}`))
	if status != http.StatusOK {
		t.Fatalf("rotate: %d %s", status, body)
	}
	var rot server.GossipKeyResponse
	if err := json.Unmarshal(body, &rot); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(base64.StdEncoding.EncodeToString(before.GossipKeys[0]))) {
		t.Errorf("the admin reply holds a gossip key")
	}
	_, during := getRoster(t, ts, tm, boxKey(t))
	if len(during.GossipKeys) != 2 || !bytes.Equal(during.GossipKeys[1], before.GossipKeys[0]) || server.GossipKeyID(during.GossipKeys[0]) != rot.Primary {
		t.Fatalf("keyring during the rotation: %d keys; want the new primary (%s) then the old one", len(during.GossipKeys), rot.Primary)
	}
	ts.clock.Advance(server.DefaultGossipKeyGrace + time.Minute)
	_, late := getRoster(t, ts, tm, boxKey(t))
	if len(late.GossipKeys) != 1 {
		t.Errorf("keyring after the grace period: %d keys, want only the primary", len(late.GossipKeys))
	}
	// Rotating again drops the key past its grace: the keyring stays two keys.
	if status, _, body := do(t, "POST", ts.url+"/v1/admin/stores/S1/gossip-key", "application/json", "Bearer "+testAdminToken, []byte(`{}`)); status != http.StatusOK {
		t.Fatalf("second rotation: %d %s", status, body)
	}
	if _, again := getRoster(t, ts, tm, boxKey(t)); len(again.GossipKeys) != 2 || !bytes.Equal(again.GossipKeys[1], during.GossipKeys[0]) {
		t.Errorf("keyring after a second rotation: %d keys; want the newest primary and the previous one only", len(again.GossipKeys))
	}
	status, _, body = do(t, "POST", ts.url+"/v1/admin/stores/S1/gossip-key", "application/json", "Bearer "+testAdminToken, []byte(`{"finish":true}`))
	if status != http.StatusOK {
		t.Fatalf("finish: %d %s", status, body)
	}
	if err := json.Unmarshal(body, &rot); err != nil || rot.Removed != 1 || len(rot.Retired) != 0 {
		t.Errorf("finish reply %s: want 1 key removed, none retired left", body)
	}
	status, h, body := do(t, "POST", ts.url+"/v1/admin/stores/NOPE/gossip-key", "application/json", "Bearer "+testAdminToken, []byte(`{}`))
	wantProblem(t, status, h, body, http.StatusNotFound, server.CodeNotFound)
}

func TestCardKeyIsMadeOnceWithMode0600(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "card.key")
	k1, created, err := server.LoadOrCreateCardKey(path)
	if err != nil || !created || len(k1) != server.CardKeySize {
		t.Fatalf("first load: %d bytes, created %t, %v", len(k1), created, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("card key mode %v, want 0600", fi.Mode().Perm())
	}
	k2, created, err := server.LoadOrCreateCardKey(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Errorf("second load: created %t, same %t, %v; want the same key read back", created, bytes.Equal(k1, k2), err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.LoadOrCreateCardKey(path); err == nil {
		t.Errorf("a world-readable card key was accepted")
	}
}
