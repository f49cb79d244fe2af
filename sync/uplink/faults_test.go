package uplink_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/sync/batch"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

// Invariant 2 against the stub ledger: several terminals, ops appended
// while the uplinks run behind a proxy that drops, duplicates, delays,
// reorders, truncates and fails exchanges; after the network heals every
// op is applied exactly once and every balance matches the test's model.
func TestFaultyNetworkEveryOpExactlyOnce(t *testing.T) {
	// One seed here; the end-to-end test runs more against the real cloud.
	for _, seed := range []uint64{1} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			const terminals, perTerminal = 3, 100
			cloud := newSigner(t, batch.CloudSigner)
			ledger := newStubLedger(t, cloud)
			proxy := newFaultProxy(t, serve(t, ledger), seed, 0.4)
			url := serve(t, proxy)

			model := map[loyalty.CardHash]loyalty.Points{}
			var all []loyalty.Op
			var mu sync.Mutex
			var wg sync.WaitGroup
			ups := make([]*uplink.Uplink, terminals)
			for i := range terminals {
				name := fmt.Sprintf("T-%02d", i+1)
				term := newSigner(t, name)
				ledger.mu.Lock()
				ledger.keys[name] = term.Public()
				ledger.mu.Unlock()
				j := openJournal(t, name)
				cfg := fastConfig(url, term, cloud.Public(), t)
				cfg.MaxOps, cfg.RequestTimeout = 3+i*11, 2*time.Second
				u := mustUplink(t, j, cfg)
				ups[i] = u
				u.Start(context.Background())
				t.Cleanup(func() { u.Shutdown(context.Background()) })
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range perTerminal {
						o, err := j.Append(context.Background(), earn(i*perTerminal+n, 11))
						if err != nil {
							t.Errorf("append: %v", err)
							return
						}
						u.Notify()
						mu.Lock()
						all = append(all, o)
						model[o.Card] += o.Points
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			healAndDrain(t, proxy, ups, perTerminal)
			ledger.check(t, all)
			ledger.mu.Lock()
			defer ledger.mu.Unlock()
			for c, want := range model {
				if got := ledger.balances[c]; got != want {
					t.Errorf("card %s: ledger balance %d, model %d", c.Short(), got, want)
				}
			}
		})
	}
}

// healAndDrain lets the faults bite, heals the proxy once it has broken
// 60 exchanges (or once the uplinks got everything through anyway), then
// stops each uplink and syncs it to the end over the healed link.
func healAndDrain(t *testing.T, proxy *faultProxy, ups []*uplink.Uplink, perTerminal int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for proxy.Faults() < 60 && !allAcked(ups, perTerminal) {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: %d faults, uplinks %v", proxy.Faults(), states(ups))
		}
		time.Sleep(time.Millisecond)
	}
	proxy.Heal()
	for _, u := range ups {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := u.Shutdown(ctx); err != nil {
			cancel()
			t.Fatal(err)
		}
		if err := u.Sync(ctx); err != nil {
			cancel()
			t.Fatalf("sync after healing: %v", err)
		}
		cancel()
	}
	t.Logf("faults: %s", proxy.Counts())
}

func allAcked(ups []*uplink.Uplink, n int) bool {
	for _, u := range ups {
		if st := u.State(); st.AckedSeq != uint64(n) {
			return false
		}
	}
	return true
}

func states(ups []*uplink.Uplink) []uplink.State {
	var s []uplink.State
	for _, u := range ups {
		s = append(s, u.State())
	}
	return s
}
