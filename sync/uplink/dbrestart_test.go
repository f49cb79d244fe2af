package uplink_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// Invariant 2 across a database restart: the cloud's PostgreSQL stops
// (a fast shutdown, which ends every session, as an upgrade or a failover
// does) while three terminals sell and send, and starts again. While it
// is down the cloud answers their batches 503 and the tills keep them;
// once it is back every op is on the ledger exactly once: each
// watermark is the journal's last sequence, each balance the test's
// model, and the ledger's check passes. The server is the test's own, so
// that stopping it stops no other test.
func TestE2EDatabaseRestartEveryOpExactlyOnce(t *testing.T) {
	pg := storetest.PrivatePostgres(t)
	ctx := context.Background()
	ledger, err := sqlstore.Open(ctx, pg.URL, quietLedger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	t.Cleanup(func() { storetest.AssertConserved(t, ledger) })
	c := newCloudOn(t, ledger)

	const terminals, perTerminal = 3, 60
	model := map[loyalty.CardHash]loyalty.Points{}
	tms := make([]*terminal, terminals)
	ups := make([]*uplink.Uplink, terminals)
	for i := range tms {
		tms[i] = c.enroll(t, fmt.Sprintf("T-%02d", i+1))
		cfg := tms[i].config(t, c.url)
		cfg.MaxOps = 7
		u := mustUplink(t, tms[i].j, cfg)
		ups[i] = u
		u.Start(ctx)
		t.Cleanup(func() { u.Shutdown(context.Background()) })
	}
	sell := func(from, to int) {
		t.Helper()
		for n := from; n < to; n++ {
			for i, tm := range tms {
				o, err := tm.j.Append(ctx, earn(i*perTerminal+n, 17))
				if err != nil {
					t.Fatalf("append: %v", err)
				}
				ups[i].Notify()
				model[o.Card] += o.Points
			}
			time.Sleep(time.Millisecond)
		}
	}

	sell(0, perTerminal/3)
	pg.Stop()
	sell(perTerminal/3, 2*perTerminal/3)
	// Every till has tried to send while the database was down.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		down := 0
		for _, u := range ups {
			if st := u.State(); !st.Online && strings.Contains(st.LastError, "503") {
				down++
			}
		}
		if down == terminals {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tills did not all hear 503 while the database was down: %+v", states(ups))
		}
	}
	pg.Start()
	sell(2*perTerminal/3, perTerminal)

	for deadline := time.Now().Add(time.Minute); !allAcked(ups, perTerminal); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the database came back: %+v", states(ups))
		}
	}
	for i, tm := range tms {
		c.checkWatermark(t, tm, perTerminal)
		if st := ups[i].State(); st.Rejected != 0 {
			t.Errorf("%s: %d ops rejected", tm.st.Terminal, st.Rejected)
		}
	}
	c.checkBalances(t, model)
}
