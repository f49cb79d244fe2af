package server

import (
	"crypto/ed25519"
	"net/http"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// handleEnroll serves POST /v1/enroll: a batch.EnrollRequest in, a
// batch.EnrollResponse out, with the enrollment registered in the ledger.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req batch.EnrollRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	keyErr := loyalty.CheckSigningKey(req.PublicKey) // before Verify, which a small-order key fools
	switch {
	case req.Code == "" || len(req.Code) > 128:
		s.fail(w, r, problem(CodeInvalidRequest, "send the enrollment code the operator gave you"))
		return
	case keyErr != nil:
		s.fail(w, r, problem(CodeInvalidRequest, "public_key: %v; send the key 'tillpoint enroll' generates", keyErr))
		return
	case !ed25519.Verify(req.PublicKey, batch.EnrollProofMessage(req.Code, req.PublicKey), req.Proof):
		s.fail(w, r, problem(CodeBadSignature, "proof is not the new key's signature over the enrollment message"))
		return
	}
	if err := validAdvertise(req.Advertise); err != nil {
		s.fail(w, r, err)
		return
	}
	box, err := parseBoxKey(req.BoxKey) // before the code is spent
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pub := ed25519.PublicKey(req.PublicKey)
	t, err := s.Ledger.Enroll(r.Context(), NormalizeEnrollCode(req.Code), cloud.TerminalKey{PublicKey: pub, KeyID: batch.Fingerprint(pub), Addr: req.Advertise}, s.Now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// The code is spent: a failure from here on must not lose the
	// enrollment, so the roster is best effort (the till fetches it later).
	roster, err := s.sealRoster(r.Context(), t, box)
	if err != nil {
		s.Logger.Error("seal the roster for an enrolled terminal; it fetches it with GET /v1/roster", logStore, t.Store, logTerminal, t.ID, logErr, err)
		roster = nil
	}
	cloudPub := s.Key.Public().(ed25519.PublicKey)
	s.Logger.Info("terminal enrolled", logStore, t.Store, logTerminal, t.ID)
	writeJSON(w, http.StatusCreated, batch.EnrollResponse{
		Program:        s.Program,
		Store:          t.Store,
		Terminal:       t.ID,
		TerminalKeyID:  t.KeyID,
		CloudPublicKey: cloudPub,
		CloudKeyID:     batch.Fingerprint(cloudPub),
		Roster:         roster,
		Epoch:          t.FirstEpoch,
	})
}
