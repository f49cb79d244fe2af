package storetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// Opener opens a fresh, empty ledger for one test; it registers its own
// cleanup, including a conservation check (see OpenSQLite).
type Opener func(t *testing.T) cloud.Ledger

// Run runs the whole suite against the ledgers open returns.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, l cloud.Ledger)
	}{
		{"EnrollCodeWorksOnceAndExpires", testEnrollCode},
		{"ReenrollStartsAboveHeldEpochs", testReenrollStartsAboveHeldEpochs},
		{"RevokedTerminalIsRefusedAndLedgerUnchanged", testRevoked},
		{"RulesVersionCannotChangeContent", testRules},
		{"BatchAppliedOnceWatermarkMoves", testWatermark},
		{"ReplayGetsSameResults", testReplay},
		{"GapAndRewindAreRefusedWithWatermark", testGapRewind},
		{"NewEpochStartsAtOneOldEpochGoesOnByItsChain", testEpochs},
		{"BrokenHashChainIsRefused", testChain},
		{"InvalidBatchChangesNothing", testInvalidBatch},
		{"OpIDReusedIsDuplicateOrConflict", testOpIdentity},
		{"RefusedOpRecordsNoCardAtItsStore", testRefusedOpRecordsNoCard},
		{"RefusedOpSentAgainIsRefusedAgain", testRefusedOpSentAgain},
		{"RedeemConsumesSoonestExpiringLots", testLotOrder},
		{"AckListsPointsExpiringSoon", testAckExpiring},
		{"OfflineOverspendBooksDebtAndShortfall", testOverspend},
		{"ReverseRedeemReturnsPointsToTheirLots", testReverseRedeem},
		{"ReverseEarnTakesPointsBack", testReverseEarn},
		{"ReversalsOfEarnAndRedeemCommute", testReversalsCommute},
		{"ReverseHeldOverspendAfterLinkCancelsMovedDebt", testReverseHeldOverspendAfterLink},
		{"ReverseEarnSettledByLinkRevivesNoLapsedPoint", testReverseEarnSettledByLink},
		{"ReverseRejections", testReverseRejections},
		{"ReevaluationPostsFlaggedAdjustment", testReeval},
		{"ReevaluationBeyondOpBoundPostsTerminalFigure", testReevalBeyondOpBound},
		{"RedeemIsCheckedAgainstItsRewardsCost", testRedeemAtItsRewardsCost},
		{"EarnOnUnlinkedCardIsHeldUntilEnroll", testHeld},
		{"EnrollOfCardHeldByAnotherMemberIsRejected", testCardLinked},
		{"LinkMovesSpentLotsOfTheCard", testLinkMovesClosedLots},
		{"LinkSettlesMovedPointsAgainstDebt", testLinkSettlesMovedPointsAgainstDebt},
		{"ExpireLapsesOnlyDueLots", testExpire},
		{"ClockAheadIsFlagged", testClockAhead},
		{"SnapshotsOfStoreCardsWithAllowance", testSnapshots},
		{"SnapshotPagesListEveryCardOnce", testSnapshotPages},
		{"AllowanceLeavesOutPointsLapsingWithinIt", testAllowanceLeavesOutPointsLapsingWithinIt},
		{"AllowanceLeavesOutLapsingPointsBehindOverdueOnes", testAllowanceLeavesOutLapsingPointsBehindOverdueOnes},
		{"AllowancesOfOneMembersCardsStayWithinTheBalance", testAllowancesOfOneMembersCards},
		{"CardlessEarnPostsNothing", testCardless},
		{"ClaimCreditsCardlessPurchaseOnce", testClaim},
		{"AdjustCreditsAndDebits", testAdjust},
		{"ReverseAdjustReturnsPointsToTheirLots", testReverseAdjustReturnsPointsToTheirLots},
		{"ReverseEarnAfterItsPointsLapsed", testReverseEarnAfterItsPointsLapsed},
		{"ReverseEarnReceivedBeforeExpiryRunTakesNoLapsedPoints", testReverseEarnReceivedBeforeExpiryRun},
		{"ReverseResultIsWhatTheLedgerChanged", testReverseResultIsWhatTheLedgerChanged},
		{"ReverseOfAFlaggedRedeemGivesBackWhatItTook", testReverseOfAFlaggedRedeemGivesBackWhatItTook},
		{"ExpiryDuringReversalsLapsesEachPointOnce", testExpiryDuringReversals},
		{"TamperedBalanceHaltsApplyAndFailsCheck", testTamper},
		{"RandomOpsMatchIndependentModel", testModel},
		{"RandomLinksExpiryAndResendsMatchIndependentModel", testLedgerModel},
		{"ReverseOfLapsedEarnTakesItsQualifyingPoints", testReverseOfLapsedEarnTakesItsQualifyingPoints},
		{"ConcurrentTerminalsMatchModel", testConcurrent},
		{"LinkWhileEarningStrandsNothing", testLinkWhileEarning},
		{"ConcurrentLinksOfOneCardApplyOne", testConcurrentLinksOfOneCard},
		{"StoreRosterListsItsTerminalsAndKeyring", testStoreRoster},
		{"GossipKeyRotationKeepsTheOldKeyUntilRemoved", testGossipKeyRotation},
		{"ConcurrentFirstEnrollmentsMakeOneKeyring", testConcurrentFirstEnrollments},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := open(t)
			if err := l.PublishRules(context.Background(), TestRules(1), Start()); err != nil {
				t.Fatalf("publish rules: %v", err)
			}
			tc.fn(t, l)
		})
	}
}

var ctx = context.Background()

func snap(t *testing.T, l cloud.Ledger, c loyalty.CardHash) loyalty.Snapshot {
	t.Helper()
	s, err := l.Snapshot(ctx, c, "s1", Start())
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return s
}

func wantBalance(t *testing.T, l cloud.Ledger, c loyalty.CardHash, balance, debt loyalty.Points) {
	t.Helper()
	s := snap(t, l, c)
	if s.Balance != balance || s.Debt != debt {
		t.Errorf("card %s: got balance %d debt %d, want balance %d debt %d", c.Short(), s.Balance, s.Debt, balance, debt)
	}
}

func wantResult(t *testing.T, got cloud.OpResult, status cloud.Status, reason string, pts loyalty.Points) {
	t.Helper()
	if got.Status != status || got.Reason != reason || got.Points != pts {
		t.Errorf("op seq %d: got %s %q %d points, want %s %q %d points", got.Seq, got.Status, got.Reason, got.Points, status, reason, pts)
	}
}

func testEnrollCode(t *testing.T, l cloud.Ledger) {
	pub, _, _ := ed25519.GenerateKey(nil)
	key := cloud.TerminalKey{PublicKey: pub, KeyID: "k1"}
	if err := l.CreateEnrollCode(ctx, cloud.EnrollCode{Code: "ABC-123", Store: "s1", Terminal: "t1", Expires: Start().Add(time.Hour)}); err != nil {
		t.Fatalf("create code: %v", err)
	}
	if err := l.CreateEnrollCode(ctx, cloud.EnrollCode{Code: "OLD", Store: "s1", Terminal: "t2", Expires: Start().Add(time.Minute)}); err != nil {
		t.Fatalf("create code: %v", err)
	}
	if err := l.CreateEnrollCode(ctx, cloud.EnrollCode{Code: "ABC-123", Store: "s1", Terminal: "t9", Expires: Start().Add(time.Hour)}); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("the same code twice: got %v, want ErrInvalidInput", err)
	}
	// A key under which anyone can sign is refused, and the code stays.
	smallOrder := make([]byte, 32)
	smallOrder[0] = 1
	if _, err := l.Enroll(ctx, "ABC-123", cloud.TerminalKey{PublicKey: smallOrder, KeyID: "k0"}, Start()); !errors.Is(err, cloud.ErrInvalidInput) {
		t.Errorf("enroll with a small-order key: got %v, want ErrInvalidInput", err)
	}
	if _, err := l.Enroll(ctx, "WRONG", key, Start()); !errors.Is(err, cloud.ErrEnrollCode) {
		t.Errorf("unknown code: got %v, want ErrEnrollCode", err)
	}
	term, err := l.Enroll(ctx, "ABC-123", key, Start())
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if term.ID != "t1" || term.Store != "s1" || term.Status != cloud.TerminalActive || term.KeyID != "k1" || term.FirstEpoch != 1 {
		t.Errorf("enrolled terminal: got %+v, want t1 of s1, active, k1, from epoch 1", term)
	}
	if _, err := l.Enroll(ctx, "ABC-123", key, Start()); !errors.Is(err, cloud.ErrEnrollCode) {
		t.Errorf("second use of a code: got %v, want ErrEnrollCode", err)
	}
	if _, err := l.Enroll(ctx, "OLD", key, Start().Add(time.Minute)); !errors.Is(err, cloud.ErrEnrollCode) {
		t.Errorf("expired code: got %v, want ErrEnrollCode", err)
	}
	got, err := l.Terminal(ctx, "t1")
	if err != nil || len(got.PublicKey) != 32 || got.Store != "s1" {
		t.Errorf("terminal t1: got %+v, %v; want it registered with its key", got, err)
	}
	if _, err := l.Terminal(ctx, "t2"); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("terminal enrolled with an expired code: got %v, want ErrNotFound", err)
	}
}

// testReenrollStartsAboveHeldEpochs: a till enrolled under a terminal ID
// the ledger holds epochs of (a replacement till, a re-enrollment) is told
// to write from the next epoch, and its ops there are applied beside the
// other till's, none taken for theirs.
func testReenrollStartsAboveHeldEpochs(t *testing.T, l cloud.Ledger) {
	old := NewTill(t, l, "t1", "s1")
	old.Send(t, l, old.Earn(Card(1), 1000, 10))
	old.NewEpoch()
	old.Send(t, l, old.Earn(Card(1), 1000, 10), old.Earn(Card(1), 1000, 10))
	if err := l.CreateEnrollCode(ctx, cloud.EnrollCode{Code: "AGAIN", Store: "s1", Terminal: "t1", Expires: Start().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	term, err := l.Enroll(ctx, "AGAIN", cloud.TerminalKey{PublicKey: pub, KeyID: "k2"}, Start())
	if err != nil || term.FirstEpoch != 3 {
		t.Fatalf("re-enrollment: got first epoch %d (%v), want 3: the ledger holds epochs 1 and 2 of t1", term.FirstEpoch, err)
	}
	repl := *old
	repl.Epoch, repl.Seq, repl.Prev = term.FirstEpoch, 0, nil
	a := repl.Send(t, l, repl.Earn(Card(1), 1000, 10))
	wantResult(t, a.Results[0], cloud.StatusApplied, "", 10)
	wantBalance(t, l, Card(1), 40, 0)
}

func testRevoked(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	tl.Send(t, l, tl.Earn(Card(1), 1000, 10))
	if err := l.RevokeTerminal(ctx, "t1", Start()); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := l.Apply(ctx, tl.Seal(tl.Earn(Card(1), 1000, 10))); !errors.Is(err, cloud.ErrTerminalRevoked) {
		t.Errorf("batch from a revoked terminal: got %v, want ErrTerminalRevoked", err)
	}
	wantBalance(t, l, Card(1), 10, 0)
	if err := l.RevokeTerminal(ctx, "nope", Start()); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("revoke unknown terminal: got %v, want ErrNotFound", err)
	}
	other := &Till{ID: "ghost", Store: "s1", Epoch: 1, Now: Start()}
	if _, err := l.Apply(ctx, other.Seal(tl.Earn(Card(1), 1000, 10))); !errors.Is(err, cloud.ErrUnknownTerminal) {
		t.Errorf("batch from an unknown terminal: got %v, want ErrUnknownTerminal", err)
	}
}

func testRules(t *testing.T, l cloud.Ledger) {
	if err := l.PublishRules(ctx, TestRules(1), Start()); err != nil {
		t.Errorf("republish identical rules: %v", err)
	}
	changed := TestRules(1)
	changed.BasePoints = 2
	if err := l.PublishRules(ctx, changed, Start()); !errors.Is(err, cloud.ErrRulesConflict) {
		t.Errorf("same version, other content: got %v, want ErrRulesConflict", err)
	}
	if err := l.PublishRules(ctx, loyalty.Rules{Version: 3}, Start()); !errors.Is(err, loyalty.ErrInvalidRules) {
		t.Errorf("invalid rules: got %v, want ErrInvalidRules", err)
	}
	if err := l.PublishRules(ctx, TestRules(2), Start()); err != nil {
		t.Fatalf("publish v2: %v", err)
	}
	cur, err := l.CurrentRules(ctx)
	if err != nil || cur.Version != 2 {
		t.Errorf("current rules: got version %d, %v; want 2", cur.Version, err)
	}
	r1, err := l.Rules(ctx, 1)
	if err != nil || r1.BasePoints != 1 || len(r1.Tiers) != 2 {
		t.Errorf("rules 1: got %+v, %v; want the published content", r1, err)
	}
	if _, err := l.Rules(ctx, 99); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("rules 99: got %v, want ErrNotFound", err)
	}
}

func testWatermark(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	a := tl.Send(t, l, tl.Earn(Card(1), 1000, 10), tl.Earn(Card(2), 2000, 20), tl.Redeem(Card(1), 4, false))
	if a.Watermark != 3 || a.Replay || len(a.Results) != 3 || a.RulesVersion != 1 {
		t.Fatalf("first batch: got watermark %d replay %v %d results rules %d, want 3 false 3 1", a.Watermark, a.Replay, len(a.Results), a.RulesVersion)
	}
	wantResult(t, a.Results[0], cloud.StatusApplied, "", 10)
	wantResult(t, a.Results[2], cloud.StatusApplied, "", -4)
	if len(a.Snapshots) != 2 || a.Snapshots[0].Card != Card(1) || a.Snapshots[0].Balance != 6 || a.Snapshots[1].Balance != 20 {
		t.Errorf("snapshots: got %+v, want card 1 at 6 and card 2 at 20", a.Snapshots)
	}
	wm, latest, err := l.Watermark(ctx, "t1", 1)
	if err != nil || wm != 3 || latest != 1 {
		t.Errorf("watermark: got %d latest %d %v, want 3 1", wm, latest, err)
	}
	a = tl.Send(t, l, tl.Earn(Card(1), 500, 5))
	if a.Watermark != 4 {
		t.Errorf("second batch: got watermark %d, want 4", a.Watermark)
	}
	wantBalance(t, l, Card(1), 11, 0)
}

func testReplay(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	b := tl.Seal(tl.Earn(Card(1), 1000, 10), tl.Redeem(Card(1), 50, true), tl.Reverse(loyalty.Op{ID: loyalty.OpID{1}, Card: Card(1)}))
	first, err := l.Apply(ctx, b)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	for i := 0; i < 2; i++ {
		again, err := l.Apply(ctx, b)
		if err != nil {
			t.Fatalf("replay %d: %v", i, err)
		}
		if !again.Replay || again.Watermark != 3 {
			t.Errorf("replay %d: got replay %v watermark %d, want true 3", i, again.Replay, again.Watermark)
		}
		for j := range first.Results {
			if again.Results[j] != first.Results[j] {
				t.Errorf("replay %d op %d: got %+v, want the original %+v", i, j, again.Results[j], first.Results[j])
			}
		}
		if len(again.Snapshots) != 1 || again.Snapshots[0].Debt != 40 {
			t.Errorf("replay %d snapshots: got %+v, want card 1 with debt 40", i, again.Snapshots)
		}
	}
	wantResult(t, first.Results[2], cloud.StatusRejected, cloud.ReasonUnknownTarget, 0)
	wantBalance(t, l, Card(1), 0, 40)
}

func testGapRewind(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	b1 := tl.Seal(tl.Earn(Card(1), 1000, 10), tl.Earn(Card(1), 1000, 10))
	if _, err := l.Apply(ctx, b1); err != nil {
		t.Fatal(err)
	}
	lost := tl.Seal(tl.Earn(Card(1), 1000, 10)) // never arrives
	b3 := tl.Seal(tl.Earn(Card(1), 1000, 10))
	_, err := l.Apply(ctx, b3)
	var se *cloud.SequenceError
	if !errors.As(err, &se) || !errors.Is(err, cloud.ErrGap) || se.Watermark != 2 {
		t.Fatalf("batch after a lost one: got %v, want a gap at watermark 2", err)
	}
	// The same ops cut otherwise (a restored journal cuts its own
	// boundaries) are a replay, op by op: one op of the two, under
	// another batch hash, gets its original result and changes nothing.
	recut := b1
	recut.LastSeq, recut.Ops, recut.Hash = 1, b1.Ops[:1], []byte("other")
	if a, err := l.Apply(ctx, recut); err != nil || !a.Replay || len(a.Results) != 1 || a.Results[0].ID != b1.Ops[0].ID || a.Watermark != 2 {
		t.Errorf("the first op of a batch alone: got %+v, %v; want the replay of its result, watermark 2", a, err)
	}
	// Other ops at those sequences: the journal and the ledger diverged.
	other := tl.Earn(Card(1), 1000, 10)
	other.Epoch, other.Seq = 1, 2
	diverged := cloud.Batch{Terminal: "t1", Epoch: 1, FirstSeq: 1, LastSeq: 2, Hash: []byte("y"), ReceivedAt: Start(),
		Ops: []loyalty.Op{b1.Ops[0], other}}
	if _, err := l.Apply(ctx, diverged); !errors.Is(err, cloud.ErrDiverged) {
		t.Errorf("other ops at applied sequences: got %v, want ErrDiverged", err)
	}
	changed := b1
	changed.Ops = slices.Clone(b1.Ops)
	changed.Ops[1].Points++
	if _, err := l.Apply(ctx, changed); !errors.Is(err, cloud.ErrDiverged) {
		t.Errorf("an applied op with other content: got %v, want ErrDiverged", err)
	}
	// An overlap reaches past the watermark: a rewind, to be cut there.
	overlap := cloud.Batch{Terminal: "t1", Epoch: 1, FirstSeq: 2, LastSeq: 3, Hash: []byte("x"), ReceivedAt: Start(),
		Ops: []loyalty.Op{b1.Ops[1], lost.Ops[0]}}
	if _, err := l.Apply(ctx, overlap); !errors.Is(err, cloud.ErrRewind) {
		t.Errorf("overlapping batch: got %v, want ErrRewind", err)
	}
	wantBalance(t, l, Card(1), 20, 0)
	if _, err := l.Apply(ctx, lost); err != nil {
		t.Fatalf("resend from the watermark: %v", err)
	}
	if a, err := l.Apply(ctx, b3); err != nil || a.Watermark != 4 {
		t.Fatalf("batch after the gap is filled: got %+v, %v; want watermark 4", a.Watermark, err)
	}
	wantBalance(t, l, Card(1), 40, 0)
}

func testEpochs(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	tl.Send(t, l, tl.Earn(Card(1), 1000, 10), tl.Earn(Card(1), 1000, 10))
	old := *tl
	tl.NewEpoch()
	a := tl.Send(t, l, tl.Earn(Card(1), 1000, 10))
	if a.Epoch != 2 || a.Watermark != 1 {
		t.Errorf("new epoch: got epoch %d watermark %d, want 2 1", a.Epoch, a.Watermark)
	}
	// New ops in the old epoch, continuing its chain: a copy of the
	// journal (restored from a backup with its epoch file, a cloned disk)
	// that went on selling. They are real sales: applied, not refused
	// for an epoch the terminal has left.
	unchained := old
	unchained.Prev = []byte("not the old epoch's last batch")
	if _, err := l.Apply(ctx, unchained.Seal(unchained.Earn(Card(1), 1000, 10))); !errors.Is(err, cloud.ErrChain) {
		t.Errorf("ops in an old epoch that do not continue its chain: got %v, want ErrChain", err)
	}
	if a, err := l.Apply(ctx, old.Seal(old.Earn(Card(1), 1000, 10))); err != nil || a.Epoch != 1 || a.Watermark != 3 || a.LatestEpoch != 2 {
		t.Errorf("new ops in an old epoch: got %+v, %v; want applied, epoch 1 watermark 3, latest epoch 2", a, err)
	}
	if a := tl.Send(t, l, tl.Earn(Card(1), 1000, 10)); a.Epoch != 2 || a.Watermark != 2 {
		t.Errorf("the new epoch after them: got epoch %d watermark %d, want 2 2", a.Epoch, a.Watermark)
	}
	wantBalance(t, l, Card(1), 50, 0)
}

// testChain: a batch's previous hash must be the hash of the last batch
// applied for its terminal and epoch, always (empty for an epoch's first
// batch); a refusal says which hash the next batch must carry.
func testChain(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	first := tl.Prev
	tl.Prev = []byte("an epoch's first batch names no previous one")
	if _, err := l.Apply(ctx, tl.Seal(tl.Earn(Card(1), 1000, 10))); !errors.Is(err, cloud.ErrChain) {
		t.Errorf("first batch with a previous hash: got %v, want ErrChain", err)
	}
	tl.Seq, tl.Prev = 0, first
	b1 := tl.Seal(tl.Earn(Card(1), 1000, 10))
	a, err := l.Apply(ctx, b1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.LastHash, tl.Prev) {
		t.Errorf("applied: got last hash %x, want the batch's own %x", a.LastHash, tl.Prev)
	}
	applied := tl.Prev
	for name, prev := range map[string][]byte{"wrong": []byte("not the last batch"), "missing": nil} {
		saved := *tl
		tl.Prev = prev
		_, err := l.Apply(ctx, tl.Seal(tl.Earn(Card(1), 1000, 10)))
		var seq *cloud.SequenceError
		if !errors.Is(err, cloud.ErrChain) || !errors.As(err, &seq) {
			t.Fatalf("%s previous hash: got %v, want ErrChain", name, err)
		}
		if seq.Watermark != 1 || !bytes.Equal(seq.LastHash, applied) {
			t.Errorf("%s previous hash: the refusal says watermark %d hash %x, want 1 and %x", name, seq.Watermark, seq.LastHash, applied)
		}
		*tl = saved
	}
	wantBalance(t, l, Card(1), 10, 0)
	a = tl.Send(t, l, tl.Earn(Card(1), 1000, 10))
	// A replay of an older batch says where the chain stands now.
	if replay, err := l.Apply(ctx, b1); err != nil || !replay.Replay || !bytes.Equal(replay.LastHash, a.LastHash) {
		t.Errorf("replay of the first batch: got %+v, %v; want a replay naming the latest batch's hash %x", replay, err, a.LastHash)
	}
	wantBalance(t, l, Card(1), 20, 0)
}

func testInvalidBatch(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	cases := map[string]func(b *cloud.Batch){
		"seq out of order": func(b *cloud.Batch) { b.Ops[0].Seq, b.Ops[1].Seq = 2, 1 },
		"other terminal":   func(b *cloud.Batch) { b.Ops[1].Terminal = "t9" },
		"other epoch":      func(b *cloud.Batch) { b.Ops[1].Epoch = 7 },
		"other store":      func(b *cloud.Batch) { b.Ops[1].Store = "s2" }, // a terminal books only to its own store
		"count mismatch":   func(b *cloud.Batch) { b.LastSeq++ },
		"no hash":          func(b *cloud.Batch) { b.Hash = nil },
		"zero first seq":   func(b *cloud.Batch) { b.FirstSeq, b.LastSeq = 0, 1 },
		"epoch 0": func(b *cloud.Batch) { // no journal writes one
			b.Epoch = 0
			for i := range b.Ops {
				b.Ops[i].Epoch = 0
			}
		},
	}
	for name, mangle := range cases {
		saved := *tl
		b := tl.Seal(tl.Earn(Card(1), 1000, 10), tl.Earn(Card(1), 1000, 10))
		*tl = saved
		mangle(&b)
		if _, err := l.Apply(ctx, b); !errors.Is(err, cloud.ErrInvalidBatch) {
			t.Errorf("%s: got %v, want ErrInvalidBatch", name, err)
		}
	}
	if wm, _, _ := l.Watermark(ctx, "t1", 1); wm != 0 {
		t.Errorf("watermark after invalid batches: got %d, want 0", wm)
	}
	wantBalance(t, l, Card(1), 0, 0)
}

func testOpIdentity(t *testing.T, l cloud.Ledger) {
	tl := NewTill(t, l, "t1", "s1")
	earn := tl.Earn(Card(1), 1000, 10)
	tl.Send(t, l, earn)
	same, changed := earn, earn
	changed.Points = 11
	a := tl.Send(t, l, same, changed, tl.Earn(Card(1), 100, 1))
	wantResult(t, a.Results[0], cloud.StatusDuplicate, "", 10)
	wantResult(t, a.Results[1], cloud.StatusRejected, cloud.ReasonConflict, 0)
	wantResult(t, a.Results[2], cloud.StatusApplied, "", 1)
	// The same op journaled again after a restore (new epoch) is a duplicate.
	tl.NewEpoch()
	a = tl.Send(t, l, earn)
	wantResult(t, a.Results[0], cloud.StatusDuplicate, "", 10)
	// Within one batch too.
	e2 := tl.Earn(Card(1), 300, 3)
	a = tl.Send(t, l, e2, e2)
	wantResult(t, a.Results[0], cloud.StatusApplied, "", 3)
	wantResult(t, a.Results[1], cloud.StatusDuplicate, "", 3)
	bad := tl.Earn(Card(1), 100, 1)
	bad.Basket = nil
	huge := tl.Redeem(Card(1), 1, true)
	huge.Points = math.MinInt64
	a = tl.Send(t, l, bad, huge)
	wantResult(t, a.Results[0], cloud.StatusRejected, cloud.ReasonInvalid, 0)
	wantResult(t, a.Results[1], cloud.StatusRejected, cloud.ReasonInvalid, 0)
	wantBalance(t, l, Card(1), 14, 0)
}

// testRefusedOpRecordsNoCard: a refused op changes nothing, not even its
// store's list of cards (which its terminals get snapshots of): neither a
// conflict (an op ID applied at another store, sent with other content)
// nor the enroll of a card another member holds.
func testRefusedOpRecordsNoCard(t *testing.T, l cloud.Ledger) {
	t1, t2 := NewTill(t, l, "t1", "s1"), NewTill(t, l, "t2", "s2")
	c, d := Card(3), Card(4)
	earn := t2.Earn(c, 1000, 10)
	t2.Send(t, l, earn, t2.Enroll(d, "eve"))
	forged := earn
	forged.Store, forged.Points = "s1", 99
	a := t1.Send(t, l, forged, t1.Enroll(d, "mal"))
	wantResult(t, a.Results[0], cloud.StatusRejected, cloud.ReasonConflict, 0)
	wantResult(t, a.Results[1], cloud.StatusRejected, cloud.ReasonCardLinked, 0)
	snaps, err := l.Snapshots(ctx, "s1", loyalty.CardHash{}, 100, t1.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		t.Errorf("store s1 lists card %s, which only refused ops of its terminal named", s.Card.Short())
	}
	// Once an op of the store is applied, the card is listed.
	t1.Send(t, l, t1.Earn(c, 500, 5))
	if snaps, err = l.Snapshots(ctx, "s1", loyalty.CardHash{}, 100, t1.Now); err != nil || len(snaps) != 1 || snaps[0].Card != c {
		t.Errorf("store s1 after an earn with card %s: got %+v, %v; want that card listed", c.Short(), snaps, err)
	}
}

// testRefusedOpSentAgain: a retry never flips an outcome. A reversal
// refused because its target had not arrived, sent again once it has
// (after a journal restore, in a new epoch), is refused again for the
// same reason and takes nothing; an op with its ID and other content is
// a conflict, within one batch as across batches.
func testRefusedOpSentAgain(t *testing.T, l cloud.Ledger) {
	t1, t2 := NewTill(t, l, "t1", "s1"), NewTill(t, l, "t2", "s1")
	c := Card(1)
	earn := t2.Earn(c, 1000, 10)
	rev := t1.Reverse(earn)
	a := t1.Send(t, l, rev)
	wantResult(t, a.Results[0], cloud.StatusRejected, cloud.ReasonUnknownTarget, 0)
	t2.Send(t, l, earn)
	t1.NewEpoch()
	other := rev
	other.Cashier = "someone else"
	a = t1.Send(t, l, rev, other)
	wantResult(t, a.Results[0], cloud.StatusRejected, cloud.ReasonUnknownTarget, 0)
	wantResult(t, a.Results[1], cloud.StatusRejected, cloud.ReasonConflict, 0)
	wantBalance(t, l, c, 10, 0)
	// Refused and sent again in one batch: the later earn makes no
	// difference to the second copy.
	earn2 := t1.Earn(c, 500, 5)
	rev2 := t1.Reverse(earn2)
	a = t1.Send(t, l, rev2, earn2, rev2)
	wantResult(t, a.Results[1], cloud.StatusApplied, "", 5)
	wantResult(t, a.Results[2], cloud.StatusRejected, cloud.ReasonUnknownTarget, 0)
	wantBalance(t, l, c, 15, 0)
}
