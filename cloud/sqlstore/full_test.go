package sqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/cloud/sqlstore"
	"github.com/tillpoint/tillpoint/cloud/storetest"
	"github.com/tillpoint/tillpoint/internal/testdisk"
)

// TestFullStorageRefusesTheBatchAndLosesNothing defends "nothing lost" when
// the ledger's database has no room: the batch is refused as
// cloud.ErrStorageFull (which the server answers with a 503 the till
// retries), nothing of it is written, Ping says the storage is full (and
// keeps saying so after other writes succeed, until a batch is applied),
// and once there is room the same batch applies exactly once. On SQLite,
// max_page_count on the one writer connection stands in for a full disk
// (cmd/tillpoint's TestCloudOnAFullDisk fills a real one); on PostgreSQL
// the ledger's tables live in a tablespace on a real tmpfs, filled to the
// byte, so the server itself hits ENOSPC extending a table.
func TestFullStorageRefusesTheBatchAndLosesNothing(t *testing.T) {
	for _, db := range []struct {
		name string
		// open returns a ledger and fill, which leaves its storage no
		// room and returns what makes room again.
		open func(t *testing.T) (s *sqlstore.Store, fill func() (makeRoom func()))
	}{
		{"sqlite", openSQLiteWithPageLimit},
		{"postgres", openPostgresOnTmpfs},
	} {
		t.Run(db.name, func(t *testing.T) {
			ctx := context.Background()
			s, fill := db.open(t)
			if err := s.PublishRules(ctx, storetest.TestRules(1), storetest.Start()); err != nil {
				t.Fatal(err)
			}
			tl := storetest.NewTill(t, s, "t1", "s1")
			first := tl.Seal(tl.Earn(storetest.Card(1), 1000, 10))
			if _, err := s.Apply(ctx, first); err != nil {
				t.Fatal(err)
			}

			makeRoom := fill()
			b := tl.Seal(tl.Earn(storetest.Card(2), 1000, 10), tl.Earn(storetest.Card(3), 2000, 20))
			// A small transaction may still fit in pages the database
			// has (SQLite's WAL; PostgreSQL's free space in a page). Send
			// batches until one is refused.
			var err error
			for i := 0; i < 50 && err == nil; i++ {
				if _, err = s.Apply(ctx, b); err == nil {
					b = tl.Seal(tl.Earn(storetest.Card(4+i), 100000, 1000))
				}
			}
			if !errors.Is(err, cloud.ErrStorageFull) {
				t.Fatalf("Apply with no room: %v, want cloud.ErrStorageFull", err)
			}
			t.Logf("refused: %v", err)
			wm, _, werr := s.Watermark(ctx, "t1", b.Epoch)
			if werr != nil || wm != b.FirstSeq-1 {
				t.Fatalf("watermark after the refused batch %d..%d: %d (%v); want %d: nothing of it applied", b.FirstSeq, b.LastSeq, wm, werr, b.FirstSeq-1)
			}
			if err := s.Ping(ctx); !errors.Is(err, cloud.ErrStorageFull) {
				t.Errorf("Ping after a write found no room: %v, want cloud.ErrStorageFull", err)
			}

			makeRoom()
			// Writes other than a batch's, and a batch acknowledged
			// again, prove no room for batches: still full.
			if a, err := s.Apply(ctx, first); err != nil || !a.Replay {
				t.Fatalf("the first batch again: replay %v, %v; want its ack again", a.Replay, err)
			}
			now := storetest.Start()
			if err := s.CreateEnrollCode(ctx, cloud.EnrollCode{Code: "ROOM", Store: "s1", Terminal: "t2", Expires: now.Add(time.Hour), Created: now}); err != nil {
				t.Fatal(err)
			}
			if err := s.Ping(ctx); !errors.Is(err, cloud.ErrStorageFull) {
				t.Errorf("Ping after an enrollment code and a replayed batch were written: %v, want cloud.ErrStorageFull until a batch is applied", err)
			}
			a, err := s.Apply(ctx, b)
			if err != nil || a.Watermark != b.LastSeq || a.Replay {
				t.Fatalf("the refused batch once there is room: watermark %d, replay %v, %v; want it applied", a.Watermark, a.Replay, err)
			}
			if err := s.Ping(ctx); err != nil {
				t.Errorf("Ping after a batch was applied again: %v", err)
			}
			storetest.AssertConserved(t, s)
		})
	}
}

// openSQLiteWithPageLimit opens a SQLite ledger whose fill caps the
// database at the pages it has.
func openSQLiteWithPageLimit(t *testing.T) (*sqlstore.Store, func() func()) {
	s := storetest.OpenSQLite(t, sqlstore.Options{})
	return s, func() func() {
		ctx := context.Background()
		var pages int64
		if err := s.DB().QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DB().ExecContext(ctx, fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
			t.Fatal(err)
		}
		return func() {
			if _, err := s.DB().ExecContext(ctx, `PRAGMA max_page_count = 1073741823`); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// openPostgresOnTmpfs opens a PostgreSQL ledger whose tables and indexes
// are in a tablespace of their own on a 4 MiB tmpfs, which fill fills.
// It needs root and the test server on this machine, running as the
// postgres user; it skips the test otherwise.
func openPostgresOnTmpfs(t *testing.T) (*sqlstore.Store, func() func()) {
	base := storetest.PostgresURL(t)
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres user on this machine (%v): the test server is not local", err)
	}
	dir := testdisk.Tmpfs(t, "size=4m,mode=0700,uid="+pg.Uid+",gid="+pg.Gid, "the sqlite case and TestStorageFullKnowsEachDatabasesError")
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var rnd [6]byte
	rand.Read(rnd[:])
	space := "tp_full_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec("CREATE TABLESPACE " + space + " LOCATION '" + dir + "'"); err != nil {
		t.Skipf("cannot make a tablespace on the test's tmpfs (%v): the test server is not this machine's, or not as a superuser", err)
	}
	t.Cleanup(func() { // after the schema, dropped by a later cleanup, emptied it
		if _, err := admin.Exec("DROP TABLESPACE " + space); err != nil {
			t.Errorf("drop tablespace %s: %v", space, err)
		}
	})
	s := openURL(t, storetest.PostgresSchema(t)+"&default_tablespace="+space)
	var got string
	if err := s.DB().QueryRow(`SELECT COALESCE(tablespace, '') FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'lots'`).Scan(&got); err != nil || got != space {
		t.Fatalf("the ledger's lots table is in tablespace %q (%v), want %s", got, err, space)
	}
	return s, func() func() {
		filler := testdisk.Fill(t, dir)
		return func() {
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
		}
	}
}
