package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

// forgedBatch posts malformed and forged batches straight to the cloud and
// checks the ledger did not move (invariant 6).
func (d *demo) forgedBatch(ctx context.Context) error {
	before, err := d.cloud.ledger.Check(ctx)
	if err != nil {
		return fmt.Errorf("ledger check: %w", err)
	}
	bodies := [][]byte{
		[]byte("not cbor at all"),
		{0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0, 0x58, 0x10}, // a truncated COSE_Sign1
		bytes.Repeat([]byte{0xff}, 4096),
	}
	var statuses []string
	for _, b := range bodies {
		req, _ := http.NewRequestWithContext(ctx, "POST", d.cloud.url+"/v1/batches", bytes.NewReader(b))
		req.Header.Set("Content-Type", `application/cose; cose-type="cose-sign1"`)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		statuses = append(statuses, resp.Status)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			d.forged = fmt.Sprintf("a forged batch got %s, want a 4xx refusal", resp.Status)
		}
	}
	after, err := d.cloud.ledger.Check(ctx)
	if err != nil {
		return fmt.Errorf("ledger check: %w", err)
	}
	if after.Transactions != before.Transactions || after.Liability != before.Liability {
		d.forged = fmt.Sprintf("the ledger moved after forged batches: %d→%d transactions", before.Transactions, after.Transactions)
	}
	d.say("3 forged or malformed batches sent to the cloud: %s; ledger unchanged", strings.Join(statuses, ", "))
	return nil
}

// check is one invariant's verdict.
type check struct {
	name   string
	ok     bool
	detail string
}

// summary prints ops per till, the cloud's balances and every invariant,
// and reports whether they all held.
func (d *demo) summary(ctx context.Context) (bool, error) {
	fmt.Fprintln(d.out, "\nSummary")
	type tally struct{ enroll, earn, redeem, reverse, offline int }
	tallies := map[string]*tally{}
	journalOps := map[string][]loyalty.Op{}
	for _, t := range []*demoTerminal{d.t1, d.t2} {
		ops, err := t.w.journal.OpsAfter(ctx, 0, 0, 100_000)
		if err != nil {
			return false, err
		}
		journalOps[t.id] = ops
		ta := &tally{}
		for _, op := range ops {
			switch op.Kind {
			case loyalty.OpEnroll:
				ta.enroll++
			case loyalty.OpEarn:
				ta.earn++
			case loyalty.OpRedeem:
				ta.redeem++
			case loyalty.OpReverse:
				ta.reverse++
			}
			if op.Offline {
				ta.offline++
			}
		}
		tallies[t.id] = ta
		fmt.Fprintf(d.out, "  %s: %d ops (%d enroll, %d earn, %d redeem, %d void), %d made offline\n",
			t.id, len(ops), ta.enroll, ta.earn, ta.redeem, ta.reverse, ta.offline)
	}
	fmt.Fprintln(d.out, "  cloud balances:")
	now := time.Now()
	for _, c := range []struct{ name, card string }{{"Ana", "nfc:" + cardAna}, {"Ben", "barcode:" + cardBen}, {"Carla", "barcode:" + cardCarla}} {
		tok, _ := loyalty.ParseCardToken(c.card)
		s, err := d.cloud.ledger.Snapshot(ctx, tok.Hash(d.key), "S1", now)
		if err != nil {
			return false, err
		}
		member := string(s.Member)
		if member == "" {
			member = "no member yet: points held on the card"
		}
		fmt.Fprintf(d.out, "    %-6s %-22s %5d points  tier %-7s (%s)\n", c.name, tok.String(), s.Balance, orNone(s.Tier), member)
	}

	var checks []check
	add := func(name string, ok bool, format string, args ...any) {
		checks = append(checks, check{name, ok, fmt.Sprintf(format, args...)})
	}

	// 1. Every op a POS was told about is in its till's journal, and the
	// journals' chains verify.
	missing := 0
	total := 0
	for _, t := range []*demoTerminal{d.t1, d.t2} {
		for _, a := range t.acked {
			total++
			if _, ok, err := t.w.journal.OpByID(ctx, a.op); err != nil || !ok {
				missing++
			}
		}
	}
	var verifyErr error
	for _, t := range []*demoTerminal{d.t1, d.t2} {
		if _, err := t.w.journal.Verify(ctx); err != nil && verifyErr == nil {
			verifyErr = fmt.Errorf("%s: %w", t.id, err)
		}
	}
	add("1 acknowledged ops are durable", missing == 0 && verifyErr == nil,
		"%d of %d acknowledged ops in their journals; hash chains verify: %v", total-missing, total, verifyErr == nil)

	// 2. Every op reached the cloud exactly once.
	report, checkErr := d.cloud.ledger.Check(ctx)
	exact := true
	var wms []string
	var earned, redeemed, reversed loyalty.Points
	for _, t := range []*demoTerminal{d.t1, d.t2} {
		epoch, seq, err := t.w.journal.Head(ctx)
		if err != nil {
			return false, err
		}
		wm, _, err := d.cloud.ledger.Watermark(ctx, t.id, epoch)
		if err != nil {
			return false, err
		}
		if wm != seq {
			exact = false
		}
		wms = append(wms, fmt.Sprintf("%s %d/%d", t.id, wm, seq))
		for _, op := range journalOps[t.id] {
			switch op.Kind {
			case loyalty.OpEarn:
				earned += op.Points
			case loyalty.OpRedeem:
				redeemed -= op.Points
			case loyalty.OpReverse:
				reversed += op.Points
			}
		}
	}
	exact = exact && report.Earned == earned && report.Redeemed == redeemed
	add("2 every op reaches the cloud exactly once", exact,
		"cloud watermark = journal head (%s); earned %d = %d, redeemed %d = %d in the journals",
		strings.Join(wms, ", "), report.Earned, earned, report.Redeemed, redeemed)

	// 3. Conservation.
	add("3 conservation", checkErr == nil && len(report.Problems) == 0 &&
		report.Earned-report.Redeemed-report.Expired+report.Adjusted-report.Settled == report.Liability,
		"ledger check: %d transactions, liability %d = earned %d - redeemed %d - expired %d + adjusted %d - settled %d; problems: %d",
		report.Transactions, report.Liability, report.Earned, report.Redeemed, report.Expired, report.Adjusted, report.Settled, len(report.Problems))

	// 4. Offline overspend bounded by the allowance, store-wide.
	bounded := d.refusedCap > 0
	var lines []string
	for card, allow := range d.allowance {
		tok, _ := loyalty.ParseCardToken(card)
		h := tok.Hash(d.key)
		var spent loyalty.Points
		for _, ops := range journalOps {
			for _, op := range ops {
				if op.Kind == loyalty.OpRedeem && op.Offline && op.Card == h {
					spent -= op.Points
				}
			}
		}
		if spent > allow {
			bounded = false
		}
		lines = append(lines, fmt.Sprintf("%s redeemed %d of %d offline across both tills", tok, spent, allow))
	}
	add("4 offline overspend bounded", bounded, "%s; %d redeem refused at the cap", strings.Join(lines, "; "), d.refusedCap)

	// 5. Same points on the till and in the cloud.
	add("5 till and cloud agree on points", report.Adjusted == reversed,
		"the cloud re-evaluated every earn with its rules version: adjustments %d = the voids' %d, no re-evaluation difference",
		report.Adjusted, reversed)

	// 6. Bad input changes nothing.
	add("6 forged and malformed batches change nothing", d.forged == "", "%s", orNone(d.forged))

	// 7. No card in the clear.
	var leaks []string
	haystacks := map[string][]byte{"logs": d.logs.Bytes(), "API replies": d.replies.Bytes()}
	for _, t := range []*demoTerminal{d.t1, d.t2} {
		haystacks[t.id+" printer"] = t.printer.Received()
	}
	for where, hay := range haystacks {
		for _, c := range []string{cardAna, cardBen, cardCarla} {
			if bytes.Contains(bytes.ToUpper(hay), []byte(strings.ToUpper(c))) {
				leaks = append(leaks, where)
			}
		}
	}
	add("7 no card in the clear", len(leaks) == 0, "searched %d KiB of logs, every API reply and every printed byte: %s",
		len(d.logs.Bytes())/1024, orNone(strings.Join(leaks, ", ")))

	fmt.Fprintln(d.out, "  invariants:")
	all := true
	for _, c := range checks {
		verdict := "ok    "
		if !c.ok {
			verdict, all = "FAILED", false
		}
		fmt.Fprintf(d.out, "    %s %s: %s\n", verdict, c.name, c.detail)
	}
	if all {
		fmt.Fprintln(d.out, "  every invariant held")
	}
	return all, nil
}
