package uplink_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// Invariant 2, seeded, randomized and against a model: every op reaches
// the cloud exactly once through a cloud restored from a backup, journal
// epochs, lost posts and answers, and restarts.
//
// A run draws a sequence of steps for one or two terminals: append earns
// and redeems (redeems within the till's own view), sync (clean, or with
// posts lost and answers dropped for a while, or with the network going
// down), back up the cloud's ledger, restore the cloud from an earlier
// backup, restart a till's uplink (a new Uplink on the same journal),
// NewEpoch on a till's journal, and pull a till's snapshot feed. The
// uplinks' clock moves a minute a step, so that an idle till probes its
// last acknowledged op now and then (Config.IdleProbe). After
// every step, each till's view of each card only it uses must not show
// more than the true balance (the sum of its own ops). At the end the
// network heals, the clock moves on by IdleProbe, and every till syncs to
// completion without selling again (an idle till learns of a restore from
// its probe), and the cloud must hold
// every op of every journal exactly once at its (epoch, seq), with each
// epoch's watermark at the journal's last seq of it; every balance must be
// what the ops make it; the ledger's check must pass; every journal must
// have nothing unacknowledged and no resend pending; and after a feed
// pull each till's view of every card must be the cloud's balance.
//
// Not modelled (legitimately impossible to get right, or out of scope):
// a till's journal copied or restored from a backup (its ops may diverge
// from the cloud's at the same sequences: sequence_diverged holds it back
// by design), two tills enrolled as one terminal, a cloud restored between
// a probe's answer and the new epoch's first ack without any failed send
// in between (doc.go says it is not caught; steps here never split a
// round), store peers, expiry, reversals, and enrolls.
//
// Two known limitations of the feed are tolerated by the view check, as
// overstatements of what the cloud holds beyond the journal's
// acknowledgement watermark: (a) a feed page pulled after the cloud
// applied a batch whose answer was lost counts that batch's ops twice
// (in the page and as unacknowledged) until its ack arrives: the feed
// does not say how far the cloud holds the terminal, which takes a
// protocol change; (b) a feed page pulled from a restored cloud before
// the till has sent it anything is stored as holding the ops the cloud
// lost. TILLPOINT_RESTORE_STRICT=1 checks the views without that
// tolerance, and rare seeds then fail on them.
//
// The default seeds take a second or two. TILLPOINT_RESTORE_SOAK=N runs N
// more random seeds (a failing subtest names its seed);
// TILLPOINT_RESTORE_SEED=S runs seed S alone; TILLPOINT_RESTORE_MINIMIZE=1
// with it also shrinks a failing step sequence and logs the smallest one
// found; TILLPOINT_RESTORE_TRACE=1 logs every till's view after each step.
func TestModelCloudRestoresEpochsRestarts(t *testing.T) {
	seeds := []uint64{1, 2, 3}
	if v := os.Getenv("TILLPOINT_RESTORE_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("TILLPOINT_RESTORE_SEED=%q: %v", v, err)
		}
		seeds = []uint64{s}
	}
	n, err := strconv.Atoi(cmp.Or(os.Getenv("TILLPOINT_RESTORE_SOAK"), "0"))
	if err != nil || n < 0 {
		t.Fatalf("TILLPOINT_RESTORE_SOAK=%q: want a number of extra seeds", os.Getenv("TILLPOINT_RESTORE_SOAK"))
	}
	for range n {
		seeds = append(seeds, rand.Uint64N(1<<32))
	}
	minimize := os.Getenv("TILLPOINT_RESTORE_MINIMIZE") != ""
	for _, seed := range seeds {
		steps, terms := genSteps(seed)
		var bad []string
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			bad = runModel(t, terms, steps)
			if len(bad) > 0 {
				t.Errorf("seed %d, %d terminal(s): %d violation(s):\n%s\nsteps:\n%s",
					seed, terms, len(bad), strings.Join(bad, "\n"), stepsString(steps))
			}
		})
		if len(bad) > 0 && minimize {
			min := minimizeSteps(t, terms, steps)
			t.Logf("seed %d minimized to %d steps:\n%s", seed, len(min), stepsString(min))
		}
	}
}

type stepKind int

const (
	stAppend stepKind = iota
	stSync
	stBackup
	stRestore
	stRestart
	stNewEpoch
	stPull
)

// mstep is one step of a run. Faults, for a sync, says what happens to
// the step's posts in turn: 'o' forwarded, 'l' lost before the cloud,
// 'd' applied and its answer lost; past them the network is up, or down
// (every post lost) when down is set.
type mstep struct {
	kind   stepKind
	term   int
	n      int    // append: ops; restore: backup index
	seed   uint64 // append: what the ops are
	faults string
	down   bool
}

func (s mstep) String() string {
	switch s.kind {
	case stAppend:
		return fmt.Sprintf("T%d append %d ops (seed %d)", s.term+1, s.n, s.seed)
	case stSync:
		switch {
		case s.faults == "" && !s.down:
			return fmt.Sprintf("T%d sync", s.term+1)
		case s.down:
			return fmt.Sprintf("T%d sync, posts %q then the network down", s.term+1, s.faults)
		default:
			return fmt.Sprintf("T%d sync, posts %q then up", s.term+1, s.faults)
		}
	case stBackup:
		return "back up the cloud"
	case stRestore:
		return fmt.Sprintf("restore the cloud from backup #%d", s.n)
	case stRestart:
		return fmt.Sprintf("T%d restart the uplink", s.term+1)
	case stNewEpoch:
		return fmt.Sprintf("T%d NewEpoch", s.term+1)
	case stPull:
		return fmt.Sprintf("T%d pull the feed", s.term+1)
	}
	return "?"
}

func stepsString(steps []mstep) string {
	var b strings.Builder
	for i, s := range steps {
		fmt.Fprintf(&b, "  %2d. %s\n", i+1, s)
	}
	return b.String()
}

// genSteps draws a run: the number of terminals and the steps.
func genSteps(seed uint64) ([]mstep, int) {
	r := rand.New(rand.NewPCG(seed, 0x7111))
	terms := 1 + r.IntN(2)
	n := 12 + r.IntN(20)
	backups := 0
	var steps []mstep
	for range n {
		term := r.IntN(terms)
		var s mstep
		switch w := r.IntN(100); {
		case w < 30:
			s = mstep{kind: stAppend, term: term, n: 1 + r.IntN(8), seed: r.Uint64()}
		case w < 55:
			s = mstep{kind: stSync, term: term}
			if r.IntN(2) == 0 {
				f := make([]byte, 1+r.IntN(5))
				for i := range f {
					f[i] = "oold"[r.IntN(4)]
				}
				s.faults, s.down = string(f), r.IntN(2) == 0
			}
		case w < 65:
			s = mstep{kind: stBackup}
			backups++
		case w < 75:
			if backups == 0 {
				s = mstep{kind: stBackup}
				backups++
				break
			}
			s = mstep{kind: stRestore, n: r.IntN(backups)}
		case w < 82:
			s = mstep{kind: stRestart, term: term}
		case w < 90:
			s = mstep{kind: stNewEpoch, term: term}
		default:
			s = mstep{kind: stPull, term: term}
		}
		steps = append(steps, s)
	}
	return steps, terms
}

// Cards: each terminal has two of its own (1, 2 for T1; 3, 4 for T2) and
// both share 5 and 6.
func modelCard(n int) loyalty.CardHash {
	var c loyalty.CardHash
	binary.BigEndian.PutUint64(c[:], uint64(n))
	return c
}

func ownCards(term int) []int { return []int{2*term + 1, 2*term + 2} }

func usableCards(term, terms int) []int {
	if terms == 1 {
		return ownCards(term)
	}
	return append(ownCards(term), 5, 6)
}

// runModel runs steps with terms terminals and returns the violations
// found, each with the step at which it was seen.
func runModel(t *testing.T, terms int, steps []mstep) []string {
	ctx := context.Background()
	c := newRestorableCloud(t)
	tms := make([]*terminal, terms)
	cfgs := make([]uplink.Config, terms)
	ups := make([]*uplink.Uplink, terms)
	ops := make([][]loyalty.Op, terms)
	var skew atomic.Int64 // the uplinks' clock, ahead of the wall's
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	for i := range terms {
		tms[i] = c.env().enroll(t, fmt.Sprintf("T-%02d", i+1))
		cfgs[i] = tms[i].config(t, c.front)
		cfgs[i].MaxOps = 4
		cfgs[i].RequestTimeout = time.Second
		cfgs[i].Now = now
		ups[i] = mustUplink(t, tms[i].j, cfgs[i])
	}
	var backups []string
	strict := os.Getenv("TILLPOINT_RESTORE_STRICT") != ""
	trace := os.Getenv("TILLPOINT_RESTORE_TRACE") != ""
	pulledBeyond := make([]map[loyalty.CardHash]loyalty.Points, terms)
	for k := range pulledBeyond {
		pulledBeyond[k] = map[loyalty.CardHash]loyalty.Points{}
	}
	var bad []string
	opN := 0
	report := func(at int, format string, args ...any) {
		bad = append(bad, fmt.Sprintf("after step %d: %s", at, fmt.Sprintf(format, args...)))
	}
	setFaults := func(lose, drop func(int64) bool) {
		c.mu.Lock()
		c.lose, c.drop = lose, drop
		c.mu.Unlock()
	}

	for i, s := range steps {
		at := i + 1
		skew.Add(int64(time.Minute))
		tm := tms[s.term%terms]
		k := s.term % terms
		switch s.kind {
		case stAppend:
			r := rand.New(rand.NewPCG(s.seed, 1))
			cards := usableCards(k, terms)
			for range s.n {
				card := modelCard(cards[r.IntN(len(cards))])
				op := earn(opN, 1)
				opN++
				op.Card = card
				if r.IntN(4) == 0 {
					v, err := tm.j.View(ctx, card)
					if err != nil {
						report(at, "T%d view: %v", k+1, err)
						continue
					}
					if avail := v.Available(); avail > 0 {
						op.Kind, op.Points, op.Basket = loyalty.OpRedeem, -loyalty.Points(1+r.Int64N(int64(avail))), nil
					}
				}
				o, err := tm.j.Append(ctx, op)
				if err != nil {
					report(at, "T%d append: %v", k+1, err)
					continue
				}
				ops[k] = append(ops[k], o)
			}
		case stSync:
			start := c.posts.Load()
			faults, down := s.faults, s.down
			lose := func(n int64) bool {
				i := n - start - 1
				if i < int64(len(faults)) {
					return faults[i] == 'l'
				}
				return down
			}
			drop := func(n int64) bool {
				i := n - start - 1
				return i < int64(len(faults)) && faults[i] == 'd'
			}
			if faults != "" || down {
				setFaults(lose, drop)
			}
			d := 20 * time.Second
			if down {
				d = 300 * time.Millisecond
			}
			sctx, cancel := context.WithTimeout(ctx, d)
			err := ups[k].Sync(sctx)
			cancel()
			setFaults(nil, nil)
			if err != nil && !down {
				report(at, "T%d sync on a network that comes back: %v", k+1, err)
			}
		case stBackup:
			path := fmt.Sprintf("%s/backup-%d.db", t.TempDir(), len(backups))
			if err := c.env().ledger.BackupTo(ctx, path); err != nil {
				t.Fatalf("step %d: backup: %v", at, err)
			}
			backups = append(backups, path)
		case stRestore:
			if s.n >= len(backups) {
				continue // minimized away
			}
			// The backup file itself is served, and may be written: restore a copy.
			cp := fmt.Sprintf("%s/restored.db", t.TempDir())
			b, err := os.ReadFile(backups[s.n])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cp, b, 0o600); err != nil {
				t.Fatal(err)
			}
			c.restore(t, cp)
		case stRestart:
			ups[k] = mustUplink(t, tm.j, cfgs[k])
		case stNewEpoch:
			if _, err := tm.j.NewEpoch(ctx, "model test: continuity lost"); err != nil {
				report(at, "T%d NewEpoch: %v", k+1, err)
			}
		case stPull:
			pullFeed(t, c.env().url, tm)
			// What the page held beyond the watermark stays in the view
			// after a restore takes it from the cloud, and so does what it
			// lacked below it (a page of a restored cloud).
			for _, n := range ownCards(k) {
				card := modelCard(n)
				pulledBeyond[k][card] = heldBeyondAck(t, c, tm, ops[k], card) - lostBelowAck(t, c, tm, ops[k], card)
			}
		}
		// A till's view of a card only it uses never shows more than the
		// card holds: the sum of the till's own ops on it.
		for k := range terms {
			for _, n := range ownCards(k) {
				card := modelCard(n)
				var want loyalty.Points
				for _, o := range ops[k] {
					if o.Card == card {
						want += o.Points
					}
				}
				v, err := tms[k].j.View(ctx, card)
				if err != nil {
					report(at, "T%d view of card %d: %v", k+1, n, err)
					continue
				}
				if trace {
					ae, as, _ := tms[k].j.Acked(ctx)
					t.Logf("step %d (%s): T%d card %d: view %d (snapshot %d as of %s + %d in %d ops), own ops %d, acked %d/%d",
						at, s, k+1, n, v.Balance, v.Snapshot.Balance, v.Snapshot.AsOf.Format("15:04:05.000"), v.Unacked, v.UnackedOps, want, ae, as)
				}
				if !v.Known {
					continue
				}
				// Unless TILLPOINT_RESTORE_STRICT, the overstatement the
				// feed's known limitations explain is tolerated (see the
				// test's comment): a feed page holds ops beyond the
				// journal's acknowledgement watermark, and the journal
				// stores it as holding only the ops up to it.
				var lostAnswer loyalty.Points
				if !strict {
					lostAnswer = max(heldBeyondAck(t, c, tms[k], ops[k], card), pulledBeyond[k][card])
				}
				if got := v.Balance - v.Snapshot.Debt; got > want+max(lostAnswer, 0) {
					var list []string
					for _, o := range ops[k] {
						if o.Card == card {
							list = append(list, fmt.Sprintf("%d/%d:%+d", o.Epoch, o.Seq, o.Points))
						}
					}
					ae, as, _ := tms[k].j.Acked(ctx)
					re, rs, rok, _ := tms[k].j.Resending(ctx)
					report(at, "T%d view of its own card %d shows %d (snapshot %d, debt %d, %d unacknowledged in %d ops), the card holds %d (ops %s; acked %d/%d; resending %v %d/%d)",
						k+1, n, got, v.Snapshot.Balance, v.Snapshot.Debt, v.Unacked, v.UnackedOps, want, strings.Join(list, " "), ae, as, rok, re, rs)
				}
			}
		}
		if len(bad) > 0 {
			return bad // the first violation, at the step it shows
		}
	}

	// Heal, let every idle till's probe fall due, and sync every till to
	// completion (twice around: a till's resend does not depend on the
	// other's, but be generous).
	setFaults(nil, nil)
	skew.Add(int64(uplink.DefaultIdleProbe))
	for range 2 {
		for k := range terms {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := ups[k].Sync(sctx); err != nil {
				report(len(steps), "T%d final sync: %v", k+1, err)
			}
			cancel()
		}
	}
	if len(bad) > 0 {
		return bad
	}
	env := c.env()
	end := len(steps)
	model := map[loyalty.CardHash]loyalty.Points{}
	for k := range terms {
		name := fmt.Sprintf("T-%02d", k+1)
		// Every op exactly once, at its place.
		type key struct {
			epoch uint32
			seq   uint64
		}
		held := map[key][]byte{}
		rows, err := env.ledger.DB().QueryContext(ctx, "SELECT epoch, seq, id, status FROM ops WHERE terminal = ?", name)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var e, sq, status int64
			var id []byte
			if err := rows.Scan(&e, &sq, &id, &status); err != nil {
				t.Fatal(err)
			}
			if status != 1 {
				report(end, "%s: the cloud holds %d/%d with status %d, want applied", name, e, sq, status)
			}
			held[key{uint32(e), uint64(sq)}] = id
		}
		rows.Close()
		journalOps, err := tms[k].j.OpsAfter(ctx, 0, 0, 100000)
		if err != nil {
			t.Fatal(err)
		}
		if len(journalOps) != len(ops[k]) {
			report(end, "%s: the journal holds %d ops, the test appended %d", name, len(journalOps), len(ops[k]))
		}
		last := map[uint32]uint64{}
		for _, o := range journalOps {
			last[o.Epoch] = max(last[o.Epoch], o.Seq)
			id, ok := held[key{o.Epoch, o.Seq}]
			switch {
			case !ok:
				report(end, "%s: the cloud lacks %d/%d (card %d, %+d)", name, o.Epoch, o.Seq, binary.BigEndian.Uint64(o.Card[:]), o.Points)
			case !bytes.Equal(id, o.ID[:]):
				report(end, "%s: the cloud holds another op at %d/%d", name, o.Epoch, o.Seq)
			}
			delete(held, key{o.Epoch, o.Seq})
			model[o.Card] += o.Points
		}
		for p := range held {
			report(end, "%s: the cloud holds %d/%d, which the journal does not", name, p.epoch, p.seq)
		}
		for _, e := range slices.Sorted(func(yield func(uint32) bool) {
			for e := range last {
				if !yield(e) {
					return
				}
			}
		}) {
			if wm, _, err := env.ledger.Watermark(ctx, name, e); err != nil || wm != last[e] {
				report(end, "%s: the cloud's watermark of epoch %d is %d (%v), the journal's last seq %d", name, e, wm, err, last[e])
			}
		}
		st, err := tms[k].j.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Unacked != 0 {
			report(end, "%s: %d ops unacknowledged after the final sync", name, st.Unacked)
		}
		if e, sq, ok, err := tms[k].j.Resending(ctx); err != nil || ok {
			report(end, "%s: a resend still pending from %d/%d (%v)", name, e, sq, err)
		}
	}
	// Every balance as the ops make it (a second apply would show).
	for card, want := range model {
		snap, err := env.ledger.Snapshot(ctx, card, "S-01", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if snap.Balance-snap.Debt != want || snap.Balance > 0 && snap.Debt > 0 {
			report(end, "card %d: cloud balance %d and debt %d, the ops make %d", binary.BigEndian.Uint64(card[:]), snap.Balance, snap.Debt, want)
		}
	}
	if rep, err := env.ledger.Check(ctx); err != nil {
		report(end, "ledger check: %v (%q)", err, rep.Problems)
	}
	// Each till's view of every card, once nothing is unacknowledged and
	// the feed pulled, is the cloud's balance.
	for k := range terms {
		pullFeed(t, env.url, tms[k])
		for card := range model {
			snap, err := env.ledger.Snapshot(ctx, card, "S-01", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			v, err := tms[k].j.View(ctx, card)
			if err != nil {
				t.Fatal(err)
			}
			if v.Balance != snap.Balance || v.Snapshot.Debt != snap.Debt {
				report(end, "T%d view of card %d after the final sync and a feed pull: balance %d (snapshot %d + %d in %d ops) debt %d; the cloud's %d debt %d",
					k+1, binary.BigEndian.Uint64(card[:]), v.Balance, v.Snapshot.Balance, v.Unacked, v.UnackedOps, v.Snapshot.Debt, snap.Balance, snap.Debt)
			}
		}
	}
	return bad
}

// minimizeSteps shrinks a failing step sequence: it drops chunks of steps,
// then single steps, keeping each drop after which a run still fails. Each
// candidate runs as a subtest, with its own cloud and journals.
func minimizeSteps(t *testing.T, terms int, steps []mstep) []mstep {
	fails := func(cand []mstep) bool {
		var bad []string
		t.Run("minimize", func(t *testing.T) { bad = runModel(t, terms, cand) })
		return len(bad) > 0
	}
	for chunk := len(steps) / 2; chunk >= 1; chunk /= 2 {
		for i := 0; i+chunk <= len(steps); {
			cand := append(slices.Clone(steps[:i]), steps[i+chunk:]...)
			if fails(cand) {
				steps = cand
				continue
			}
			i += chunk
		}
	}
	return steps
}

// lostBelowAck sums the points of tm's ops on card that the journal's
// acknowledgement watermark covers though the cloud does not hold them (a
// cloud restored from a backup).
func lostBelowAck(t *testing.T, c *restorableCloud, tm *terminal, ops []loyalty.Op, card loyalty.CardHash) loyalty.Points {
	ctx := context.Background()
	ae, as, err := tm.j.Acked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sum loyalty.Points
	for _, o := range ops {
		if o.Card != card || o.Epoch > ae || o.Epoch == ae && o.Seq > as {
			continue
		}
		var id []byte
		err := c.env().ledger.DB().QueryRowContext(ctx, "SELECT id FROM ops WHERE terminal = ? AND epoch = ? AND seq = ? AND status = 1",
			tm.st.Terminal, int64(o.Epoch), int64(o.Seq)).Scan(&id)
		if err != nil || !bytes.Equal(id, o.ID[:]) {
			sum += o.Points
		}
	}
	return sum
}

// heldBeyondAck sums the points of tm's ops on card that the cloud holds
// though the journal's acknowledgement watermark does not cover them (a
// batch applied whose answer was lost).
func heldBeyondAck(t *testing.T, c *restorableCloud, tm *terminal, ops []loyalty.Op, card loyalty.CardHash) loyalty.Points {
	ctx := context.Background()
	ae, as, err := tm.j.Acked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sum loyalty.Points
	for _, o := range ops {
		if o.Card != card || o.Epoch < ae || o.Epoch == ae && o.Seq <= as {
			continue
		}
		var id []byte
		err := c.env().ledger.DB().QueryRowContext(ctx, "SELECT id FROM ops WHERE terminal = ? AND epoch = ? AND seq = ? AND status = 1",
			tm.st.Terminal, int64(o.Epoch), int64(o.Seq)).Scan(&id)
		if err == nil && bytes.Equal(id, o.ID[:]) {
			sum += o.Points
		}
	}
	return sum
}
