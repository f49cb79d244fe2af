package server

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
)

// DefaultSnapshotPage is how many snapshots one GET /v1/snapshots returns.
const DefaultSnapshotPage = 10000

// handleSnapshots is GET /v1/snapshots[?after=CARDHASH&limit=N]: the
// signed snapshots of every card the caller's store has seen, in card-hash
// order, a page at a time; the set's Next is the after= of the next page.
func (s *Server) handleSnapshots(w http.ResponseWriter, r *http.Request) {
	t, err := s.authTerminal(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	limit := DefaultSnapshotPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > batch.MaxSnapshots {
			s.fail(w, r, problem(CodeInvalidRequest, "limit must be 1 to %d", batch.MaxSnapshots))
			return
		}
		limit = n
	}
	var after loyalty.CardHash
	if v := q.Get("after"); v != "" {
		if after, err = loyalty.ParseCardHash(v); err != nil {
			s.fail(w, r, problem(CodeInvalidRequest, "after must be the Next cursor of the previous page"))
			return
		}
	}
	now := s.snapshotStamp() // before the read: see snapshotStamp
	// One more than the page: whether there is a next page.
	page, err := s.Ledger.Snapshots(r.Context(), t.Store, after, limit+1, now)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	set := &batch.SnapshotSet{Store: t.Store, AsOf: now}
	if len(page) > limit {
		page = page[:limit]
		set.Next = page[len(page)-1].Card.String()
	}
	set.Snapshots = page
	if rules, err := s.Ledger.CurrentRules(r.Context()); err == nil {
		set.RulesVersion = rules.Version
	} else if !errors.Is(err, cloud.ErrNotFound) {
		s.fail(w, r, err)
		return
	}
	sealed, err := s.signer.SealSnapshots(set)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeSealed(w, http.StatusOK, sealed)
}

// handleRules is GET /v1/rules: the current rules, signed.
func (s *Server) handleRules(w http.ResponseWriter, r *http.Request) {
	if _, err := s.authTerminal(r); err != nil {
		s.fail(w, r, err)
		return
	}
	rules, err := s.Ledger.CurrentRules(r.Context())
	if errors.Is(err, cloud.ErrNotFound) {
		s.fail(w, r, problem(CodeNoRules, "no rules are published yet; the operator publishes them"))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sealed, err := s.signer.SealRules(&rules, s.Now().UTC())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Tillpoint-Rules-Version", strconv.FormatUint(uint64(rules.Version), 10))
	writeSealed(w, http.StatusOK, sealed)
}
