package peers_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/offline/peers"
)

// Example shows how the agent wires store peers around an offline redeem:
// ask the peers, let the journal's policy decide in the append's
// transaction, then tell the store. (Compiled, not run: it needs a store.)
func Example() {
	ctx := context.Background()
	var (
		j      *journal.Journal   // the terminal's open journal
		key    ed25519.PrivateKey // the terminal's enrollment key
		roster *peers.Roster      // the store's terminals, from the cloud
		op     loyalty.Op         // the redeem the cashier asked for
	)
	cfg := peers.DefaultConfig()
	cfg.Store, cfg.Terminal, cfg.Version = "store-042", "till-1", "1.0.0"
	cfg.Keys = [][]byte{make([]byte, 32)} // the store's gossip key, from enrollment
	cfg.SigningKey, cfg.Roster = key, roster
	cfg.SnapshotPath = "/var/lib/tillpoint/serf.snapshot"
	cfg.KeyringPath = "/var/lib/tillpoint/serf.keyring"
	p, err := peers.New(cfg, peers.FromJournal(j))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := p.AnnounceUnacked(ctx, j); err != nil { // after a restart
		log.Print(err)
	}
	if err := p.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown(ctx)

	// The uplink reports its state; peers publish it in their tags.
	p.SetState(peers.State{Online: false, Backlog: 12, Acked: peers.Watermark{Epoch: 1, Seq: 40}})

	// An offline redeem at the till.
	chk, err := p.CheckRedeem(ctx, op.Card, -op.Points)
	if errors.Is(err, peers.ErrIsolatedCapReached) {
		fmt.Println(err) // the cashier's message: no cloud, no peer, stricter cap
		return
	}
	stored, err := j.AppendOfflineRedeem(ctx, op, journal.DefaultPolicy())
	if err != nil {
		fmt.Println(err) // the journal's refusal, peers' redeems counted
		return
	}
	if err := p.Broadcast(ctx, &stored); err != nil {
		log.Print(err) // best effort: the redeem stands
	}
	fmt.Println(chk.Peers, chk.Isolated)
}
