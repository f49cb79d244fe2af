package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/tillpoint/tillpoint/offline/journal"
	"github.com/tillpoint/tillpoint/offline/peers"
	"github.com/tillpoint/tillpoint/sync/uplink"
)

const journalUsage = `Usage: tillpoint journal <command> --db PATH [flags]

Inspect and verify a terminal's journal: the local SQLite record of every
loyalty operation the terminal made. The journal is opened read-only, so
these commands are safe while the agent runs.

Commands:
  stats    counts, the current epoch and the backlog the cloud has not acknowledged
  list     the ops as a table (card hashes shortened)
  verify   check the sequence and the hash chain; names the first broken op
  export   the ops as JSON lines, for support or a manual replay

Run 'tillpoint journal <command> --help' for a command's flags.
`

func (m *Main) runJournal(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, journalUsage)
		return usageError("which journal command? stats, list, verify or export")
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(m.Stdout, journalUsage)
		return errHelpShown
	case "stats":
		return m.runJournalStats(ctx, args[1:])
	case "list":
		return m.runJournalList(ctx, args[1:])
	case "verify":
		return m.runJournalVerify(ctx, args[1:])
	case "export":
		return m.runJournalExport(ctx, args[1:])
	}
	return usageError("unknown journal command %q: want stats, list, verify or export", args[0])
}

// openJournalFlag parses a journal command's flags and opens the --db
// journal read-only.
func (m *Main) openJournalFlag(ctx context.Context, name, description string, args []string) (*journal.Journal, *journalFlags, error) {
	f := &journalFlags{}
	fs := newFlagSet(m.Stdout, "journal "+name, "journal "+name+" --db PATH [flags]", description)
	fs.StringVar(&f.db, "db", "", "path of the journal database (required), e.g. /var/lib/tillpoint/journal.db")
	switch name {
	case "list", "export":
		fs.Int64Var(&f.after, "after", 0, "start after this row position (0: from the beginning)")
	}
	if name == "list" {
		fs.IntVar(&f.limit, "limit", 50, "show at most this many ops")
	}
	if name == "stats" || name == "verify" {
		fs.BoolVar(&f.json, "json", false, "print JSON instead of text")
	}
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, usageError("unexpected argument %q (see 'tillpoint journal %s --help')", fs.Arg(0), name)
	}
	if f.db == "" {
		return nil, nil, usageError("--db PATH is required, e.g. tillpoint journal %s --db /var/lib/tillpoint/journal.db", name)
	}
	if f.limit < 0 || f.after < 0 {
		return nil, nil, usageError("--limit and --after cannot be negative")
	}
	j, err := journal.Open(ctx, f.db, journal.Options{ReadOnly: true})
	if err != nil {
		return nil, nil, err
	}
	return j, f, nil
}

type journalFlags struct {
	db    string
	after int64
	limit int
	json  bool
}

func (m *Main) runJournalStats(ctx context.Context, args []string) error {
	j, f, err := m.openJournalFlag(ctx, "stats", "Print the journal's counts, its current epoch and the backlog the cloud has not acknowledged yet.", args)
	if err != nil {
		return err
	}
	defer j.Close()
	s, err := j.Stats(ctx)
	if err != nil {
		return err
	}
	out := journalStatsJSON{
		Path: j.Path(), Terminal: s.Terminal, Store: s.Store, Epoch: s.Epoch, Seq: s.Seq, Ops: s.Ops, Epochs: s.Epochs,
		AckedEpoch: s.AckedEpoch, AckedSeq: s.AckedSeq, Unacked: s.Unacked, Sealed: s.Sealed, Snapshots: s.Snapshots, PeerRedeems: s.PeerRedeems,
	}
	if !s.OldestUnacked.IsZero() {
		t := s.OldestUnacked
		out.OldestUnacked = &t
	}
	if f.json {
		return writeJSON(m.Stdout, out)
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "journal\t%s\n", out.Path)
	fmt.Fprintf(w, "terminal\t%s (store %s)\n", out.Terminal, out.Store)
	fmt.Fprintf(w, "epoch\t%d, last seq %d\n", out.Epoch, out.Seq)
	fmt.Fprintf(w, "ops\t%d in %d epochs\n", out.Ops, out.Epochs)
	fmt.Fprintf(w, "acknowledged\tup to epoch %d seq %d\n", out.AckedEpoch, out.AckedSeq)
	if out.OldestUnacked != nil {
		fmt.Fprintf(w, "unacknowledged\t%d, oldest from %s\n", out.Unacked, out.OldestUnacked.Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "unacknowledged\t0\n")
	}
	fmt.Fprintf(w, "sealed batches\t%d waiting\n", out.Sealed)
	fmt.Fprintf(w, "snapshots\t%d cards\n", out.Snapshots)
	fmt.Fprintf(w, "peer redeems\t%d\n", out.PeerRedeems)
	return w.Flush()
}

type journalStatsJSON struct {
	Path          string     `json:"path"`
	Terminal      string     `json:"terminal"`
	Store         string     `json:"store"`
	Epoch         uint32     `json:"epoch"`
	Seq           uint64     `json:"seq"`
	Ops           int64      `json:"ops"`
	Epochs        int64      `json:"epochs"`
	AckedEpoch    uint32     `json:"acked_epoch"`
	AckedSeq      uint64     `json:"acked_seq"`
	Unacked       int64      `json:"unacked"`
	OldestUnacked *time.Time `json:"oldest_unacked,omitempty"`
	Sealed        int64      `json:"sealed"`
	Snapshots     int64      `json:"snapshots"`
	PeerRedeems   int64      `json:"peer_redeems"`
}

func (m *Main) runJournalList(ctx context.Context, args []string) error {
	j, f, err := m.openJournalFlag(ctx, "list", "List the journal's ops in the order they were recorded. Cards show as the first digits of their keyed hash.", args)
	if err != nil {
		return err
	}
	defer j.Close()
	if f.limit == 0 {
		return nil
	}
	es, err := j.Entries(ctx, f.after, f.limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "POS\tEPOCH\tSEQ\tTIME\tKIND\tCARD\tPOINTS\tRECEIPT\tACKED\tID")
	for _, e := range es {
		card := "-"
		if !e.Op.Card.IsZero() {
			card = e.Op.Card.Short()
		}
		kind := e.Op.Kind.String()
		if e.Op.Offline {
			kind += " (offline)"
		}
		fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\t%s\t%d\t%s\t%v\t%s\n", e.Pos, e.Op.Epoch, e.Op.Seq,
			e.Op.WallTime.Format(time.RFC3339), kind, card, e.Op.Points, orDash(e.Op.Receipt), e.Acked, e.Op.ID)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(es) == f.limit {
		fmt.Fprintf(m.Stderr, "more ops follow: tillpoint journal list --db %s --after %d\n", f.db, es[len(es)-1].Pos)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (m *Main) runJournalVerify(ctx context.Context, args []string) error {
	j, f, err := m.openJournalFlag(ctx, "verify", `Check the journal: SQLite's integrity check, then every op in order: it decodes,
its columns agree with it, each epoch's sequence is gapless from 1, and each
hash-chain link is SHA-256 of the previous link and the op. Exits 1 and names
the first broken op when one fails.`, args)
	if err != nil {
		return err
	}
	defer j.Close()
	rep, err := j.Verify(ctx)
	var ce *journal.ChainError
	if errors.As(err, &ce) {
		if f.json {
			writeJSON(m.Stdout, journalVerifyJSON{OK: false, Ops: rep.Ops, BrokenPos: ce.Pos, BrokenEpoch: ce.Epoch, BrokenSeq: ce.Seq, Problem: ce.Problem})
		}
		return fmt.Errorf("%w; the ops before it are intact (keep the file for support)", err)
	}
	if err != nil {
		return err
	}
	if f.json {
		return writeJSON(m.Stdout, journalVerifyJSON{OK: true, Ops: rep.Ops, Epochs: rep.Epochs, Epoch: rep.Epoch, Seq: rep.Seq, Link: hex.EncodeToString(rep.Link[:])})
	}
	fmt.Fprintf(m.Stdout, "ok: %d ops in %d epochs, chain ends at epoch %d seq %d with link %x\n", rep.Ops, rep.Epochs, rep.Epoch, rep.Seq, rep.Link[:8])
	return nil
}

type journalVerifyJSON struct {
	OK          bool   `json:"ok"`
	Ops         int64  `json:"ops"`
	Epochs      int64  `json:"epochs,omitempty"`
	Epoch       uint32 `json:"epoch,omitempty"`
	Seq         uint64 `json:"seq,omitempty"`
	Link        string `json:"link,omitempty"`
	BrokenPos   int64  `json:"broken_pos,omitempty"`
	BrokenEpoch uint32 `json:"broken_epoch,omitempty"`
	BrokenSeq   uint64 `json:"broken_seq,omitempty"`
	Problem     string `json:"problem,omitempty"`
}

func (m *Main) runJournalExport(ctx context.Context, args []string) error {
	j, f, err := m.openJournalFlag(ctx, "export", `Write every op as one JSON object per line, in the order they were recorded.
Cards appear only as their keyed hash (HMAC-SHA-256), never as a card number or UID.`, args)
	if err != nil {
		return err
	}
	defer j.Close()
	enc := json.NewEncoder(m.Stdout)
	for after := f.after; ; {
		es, err := j.Entries(ctx, after, 1000)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return nil
		}
		for _, e := range es {
			if err := enc.Encode(exportEntry(e)); err != nil {
				return err
			}
		}
		after = es[len(es)-1].Pos
	}
}

// journalOpJSON is the CLI's JSON form of a stored op, kept apart from
// loyalty.Op so the domain type can change without breaking scripts.
type journalOpJSON struct {
	Pos          int64            `json:"pos"`
	Epoch        uint32           `json:"epoch"`
	Seq          uint64           `json:"seq"`
	ID           string           `json:"id"`
	Kind         string           `json:"kind"`
	Store        string           `json:"store,omitempty"`
	Terminal     string           `json:"terminal"`
	WallTime     time.Time        `json:"wall_time"`
	HLC          string           `json:"hlc"`
	CardHash     string           `json:"card_hash,omitempty"`
	Member       string           `json:"member,omitempty"`
	Points       int64            `json:"points"`
	Basket       *journalBasketJS `json:"basket,omitempty"`
	Reverses     string           `json:"reverses,omitempty"`
	Reward       string           `json:"reward,omitempty"`
	Reason       string           `json:"reason,omitempty"`
	Receipt      string           `json:"receipt,omitempty"`
	Cashier      string           `json:"cashier,omitempty"`
	RulesVersion uint32           `json:"rules_version"`
	Offline      bool             `json:"offline,omitempty"`
	Link         string           `json:"link"`
	Acked        bool             `json:"acked"`
}

type journalBasketJS struct {
	Currency string              `json:"currency"`
	Lines    []journalBasketLine `json:"lines"`
}

type journalBasketLine struct {
	SKU      string `json:"sku"`
	Category string `json:"category,omitempty"`
	Quantity int64  `json:"quantity"`
	Amount   int64  `json:"amount"`
}

func exportEntry(e journal.Entry) journalOpJSON {
	op := e.Op
	out := journalOpJSON{
		Pos: e.Pos, Epoch: op.Epoch, Seq: op.Seq, ID: op.ID.String(), Kind: op.Kind.String(), Store: op.Store,
		Terminal: op.Terminal, WallTime: op.WallTime, HLC: op.HLC.String(), Member: string(op.Member),
		Points: int64(op.Points), Reward: op.Reward, Reason: op.Reason, Receipt: op.Receipt, Cashier: op.Cashier,
		RulesVersion: op.RulesVersion, Offline: op.Offline, Link: hex.EncodeToString(e.Link[:]), Acked: e.Acked,
	}
	if !op.Card.IsZero() {
		out.CardHash = op.Card.String()
	}
	if !op.Reverses.IsZero() {
		out.Reverses = op.Reverses.String()
	}
	if op.Basket != nil {
		out.Basket = &journalBasketJS{Currency: string(op.Basket.Currency), Lines: make([]journalBasketLine, len(op.Basket.Lines))}
		for i, l := range op.Basket.Lines {
			out.Basket.Lines[i] = journalBasketLine{SKU: l.SKU, Category: l.Category, Quantity: l.Quantity, Amount: l.Amount}
		}
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// uplinkJournal adapts *journal.Journal to uplink.Journal, for wiring the
// uplink to the terminal's journal: the outbox entries convert to the
// uplink's type and an acknowledgement ahead of the journal matches
// uplink.ErrAckAhead. Everything else is the journal's own method.
type uplinkJournal struct {
	*journal.Journal
}

var _ uplink.Journal = uplinkJournal{}

// MarkAcked moves the acknowledgement watermark (journal.MarkAcked).
func (u uplinkJournal) MarkAcked(ctx context.Context, epoch uint32, seq uint64) error {
	err := u.Journal.MarkAcked(ctx, epoch, seq)
	if errors.Is(err, journal.ErrAckAhead) {
		return fmt.Errorf("%w: %w", uplink.ErrAckAhead, err)
	}
	return err
}

// Sealed lists the outbox (journal.Sealed).
func (u uplinkJournal) Sealed(ctx context.Context) ([]uplink.Sealed, error) {
	bs, err := u.Journal.Sealed(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]uplink.Sealed, len(bs))
	for i, b := range bs {
		out[i] = uplink.Sealed{Epoch: b.Epoch, First: b.FirstSeq, Last: b.LastSeq, Bytes: b.Payload}
	}
	return out, nil
}

// peersJournal adapts *journal.Journal to peers.Journal (and
// peers.PeerOpDropper), for wiring the store peers to the terminal's
// journal: only the peer redeem's type differs.
type peersJournal struct {
	*journal.Journal
}

var (
	_ peers.Journal       = peersJournal{}
	_ peers.PeerOpDropper = peersJournal{}
)

// RecordPeerRedeem records a peer's offline redeem (journal.PutPeerRedeem).
func (p peersJournal) RecordPeerRedeem(ctx context.Context, r peers.PeerRedeem) (bool, error) {
	return p.PutPeerRedeem(ctx, journal.PeerRedeem{ID: r.Op, Card: r.Card, Points: r.Points,
		Terminal: r.Terminal, Epoch: r.Epoch, Seq: r.Seq, At: r.At})
}
