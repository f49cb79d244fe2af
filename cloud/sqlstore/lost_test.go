package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/internal/syncbuf"
)

// TestConnectionLostBeforeCommitRunsAgain: the server ends the session of
// a batch's transaction before it commits (an administrator's
// pg_terminate_backend, as a server shutting down does to every session).
// Nothing of it was committed, so the ledger runs it again on another
// connection, and the terminal gets its ack instead of an error.
func TestConnectionLostBeforeCommitRunsAgain(t *testing.T) {
	ctx := context.Background()
	var log syncbuf.Buffer
	s := postgresWithRules(t, sqlstore.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	tl := storetest.NewTill(t, s, "t1", "s1")
	// The batch's transaction waits for the writers' lock, held here,
	// so that it is in flight when its session is ended.
	holder := holdTableLock(t, s, "ledger_writers")
	bt := tl.Seal(tl.Earn(storetest.Card(1), 500, 5), tl.Redeem(storetest.Card(1), 2, true))
	applied := make(chan error, 1)
	var ack cloud.Applied
	go func() {
		var err error
		ack, err = s.Apply(ctx, bt)
		applied <- err
	}()
	// waiting returns the session other than not that waits for the lock,
	// once one does. (An ended session stays listed for a moment after
	// pg_terminate_backend returns: it has yet to see the signal.)
	waiting := func(not int) (pid int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			select {
			case err := <-applied:
				t.Fatalf("the batch ended instead of waiting for the writers' lock: %v", err)
			default:
			}
			err := holder.QueryRowContext(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'relation' AND relation = 'ledger_writers'::regclass AND NOT granted AND pid <> $1`, not).Scan(&pid)
			if err == nil {
				return pid
			}
		}
		t.Fatal("the batch never waited for the writers' lock")
		return 0
	}
	first := waiting(0)
	var ended bool
	if err := holder.QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, first).Scan(&ended); err != nil || !ended {
		t.Fatalf("end the batch's session: %v %v", ended, err)
	}
	waiting(first) // the batch runs again, on another session
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-applied; err != nil {
		t.Fatalf("apply a batch whose first connection broke before the commit: %v", err)
	}
	for _, r := range ack.Results {
		if r.Status != cloud.StatusApplied {
			t.Errorf("op %d: %v, want applied", r.Seq, r.Status)
		}
	}
	if ack.Replay || ack.Watermark != bt.LastSeq {
		t.Errorf("ack replay %v watermark %d, want a first apply up to %d", ack.Replay, ack.Watermark, bt.LastSeq)
	}
	if !strings.Contains(log.String(), "running it again on another") {
		t.Errorf("no line saying the connection broke and the transaction ran again; log:\n%s", log.String())
	}
}

// TestConnectionLostAtCommitIsAnsweredExactlyOnce: the connection breaks
// after a batch's commit reached the server and before its answer came
// back (a proxy between the ledger and PostgreSQL cuts it there). The
// batch committed, but the ledger cannot know: it asks again, and
// answers the terminal with the replay of the batch applied, its results
// as applied, not applied twice. Any other transaction hears that the
// database did not answer (a 503 to its client), as the replay of a batch
// is the only answer the ledger knows to be safe to ask again for.
func TestConnectionLostAtCommitIsAnsweredExactlyOnce(t *testing.T) {
	ctx := context.Background()
	direct := storetest.PostgresSchema(t)
	cutter := startCommitCutter(t, direct)
	var log syncbuf.Buffer
	s, err := sqlstore.Open(ctx, cutter.url, sqlstore.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t.Cleanup(func() { storetest.AssertConserved(t, s) })

	cutter.armed.Store(true)
	err = s.PublishRules(ctx, storetest.TestRules(1), storetest.Start())
	if cutter.cuts.Load() != 1 {
		t.Fatalf("the proxy cut %d commits, want 1: the test proves nothing (publish: %v)", cutter.cuts.Load(), err)
	}
	if !errors.Is(err, cloud.ErrUnavailable) || !strings.Contains(err.Error(), "may have") {
		t.Fatalf("publish rules whose commit's answer was lost: got %v, want ErrUnavailable saying they may have been published", err)
	}
	if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
		t.Fatalf("publish the same rules again: %v", err)
	}

	tl := storetest.NewTill(t, s, "t1", "s1")
	bt := tl.Seal(tl.Earn(storetest.Card(1), 500, 5), tl.Redeem(storetest.Card(1), 2, true))
	cutter.armed.Store(true)
	ack, err := s.Apply(ctx, bt)
	if cutter.cuts.Load() != 2 {
		t.Fatalf("the proxy cut %d commits, want 2: the test proves nothing (apply: %v)", cutter.cuts.Load(), err)
	}
	if err != nil {
		t.Fatalf("apply a batch whose commit's answer was lost: %v", err)
	}
	if !ack.Replay || ack.Watermark != bt.LastSeq || len(ack.Results) != len(bt.Ops) {
		t.Fatalf("ack replay %v watermark %d with %d results, want the replay of the %d ops applied up to %d", ack.Replay, ack.Watermark, len(ack.Results), len(bt.Ops), bt.LastSeq)
	}
	for _, r := range ack.Results {
		if r.Status != cloud.StatusApplied {
			t.Errorf("op %d: %v, want applied (once, by the commit whose answer was lost)", r.Seq, r.Status)
		}
	}
	if n := strings.Count(log.String(), "broke as a transaction committed"); n != 2 {
		t.Errorf("%d lines about a commit whose answer was lost, want 2; log:\n%s", n, log.String())
	}
}

// commitCutter is a TCP proxy to PostgreSQL. Once armed, it passes the
// next "commit" a client sends to the server, drops the server's answer,
// and cuts both connections when the server is ready for the next query:
// the transaction committed, and the client never hears so.
type commitCutter struct {
	url   string // the server's URL, through the proxy
	armed atomic.Bool
	cuts  atomic.Int32
}

func startCommitCutter(t *testing.T, serverURL string) *commitCutter {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	target := u.Host
	u.Host = ln.Addr().String()
	c := &commitCutter{url: u.String()}
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			go c.relay(client, target)
		}
	}()
	return c
}

func (c *commitCutter) relay(client net.Conn, target string) {
	defer client.Close()
	server, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer server.Close()
	cutting := make(chan struct{})
	go func() { // server to client
		defer client.Close()
		for {
			msg, err := readMessage(server, true)
			if err != nil {
				return
			}
			select {
			case <-cutting:
				if msg[0] == 'Z' { // ReadyForQuery: the commit is done
					c.cuts.Add(1)
					server.Close()
					return
				}
				continue // the commit's answer, dropped
			default:
			}
			if _, err := client.Write(msg); err != nil {
				return
			}
		}
	}()
	startup, err := readMessage(client, false)
	if err != nil {
		return
	}
	if _, err := server.Write(startup); err != nil {
		return
	}
	for {
		msg, err := readMessage(client, true)
		if err != nil {
			return
		}
		if msg[0] == 'Q' && bytes.EqualFold(bytes.TrimRight(msg[5:], "\x00"), []byte("commit")) && c.armed.CompareAndSwap(true, false) {
			close(cutting)
		}
		if _, err := server.Write(msg); err != nil {
			return
		}
	}
}

// readMessage reads one message of PostgreSQL's protocol, its type byte
// (none for the startup message) and length included.
func readMessage(r io.Reader, typed bool) ([]byte, error) {
	head := 4
	if typed {
		head = 5
	}
	msg := make([]byte, head)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(msg[head-4:]))
	if n < 4 || n > 1<<30 {
		return nil, errors.New("bad message length")
	}
	msg = append(msg, make([]byte, n-4)...)
	_, err := io.ReadFull(r, msg[head:])
	return msg, err
}

// TestSQLiteLedgerLockedByAnotherProcessIsUnavailable: another process
// holds the SQLite ledger's write lock (a second cloud on the same file,
// a sqlite3 shell with a transaction open) for longer than the busy
// timeout. The batch is refused as the ledger unavailable (a 503 the till
// retries), with nothing written and one log line that says what to do,
// and applies once the other process lets go.
func TestSQLiteLedgerLockedByAnotherProcessIsUnavailable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	var log syncbuf.Buffer
	s, err := sqlstore.Open(ctx, "sqlite:"+path, sqlstore.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t.Cleanup(func() { storetest.AssertConserved(t, s) })
	if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
		t.Fatal(err)
	}
	tl := storetest.NewTill(t, s, "t1", "s1")
	if err := s.SetBusyTimeout(ctx, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	holder, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	bt := tl.Seal(tl.Earn(storetest.Card(1), 500, 5))
	for range 2 {
		if _, err := s.Apply(ctx, bt); !errors.Is(err, cloud.ErrUnavailable) || !strings.Contains(err.Error(), "another process") {
			t.Fatalf("apply while another process holds the write lock: got %v, want ErrUnavailable naming the other process", err)
		}
	}
	if wm, _, err := s.Watermark(ctx, bt.Terminal, bt.Epoch); err != nil || wm != 0 {
		t.Fatalf("watermark %d (%v) after the refused batch, want 0", wm, err)
	}
	if n := strings.Count(log.String(), "another process holds the SQLite ledger's write lock"); n != 1 {
		t.Errorf("%d log lines for two refused batches, want 1; log:\n%s", n, log.String())
	}
	if _, err := holder.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	ack, err := s.Apply(ctx, bt)
	if err != nil || ack.Replay || ack.Watermark != bt.LastSeq {
		t.Fatalf("the batch once the lock is let go: %+v, %v; want it applied", ack, err)
	}
}
