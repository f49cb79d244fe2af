package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/internal/testdisk"
)

// TestCloudOnAFullDiskRefusesBatchesAndLosesNothing defends "nothing lost"
// when the cloud's disk fills: on a real full file system (a tmpfs, as
// root) the cloud refuses the till's batches with a 503 storage_full and a
// Retry-After, applies nothing of them, and reports not ready; the till
// keeps its ops; once space is freed the backlog is applied, each op once.
func TestCloudOnAFullDiskRefusesBatchesAndLosesNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	disk := testdisk.Tmpfs(t, "size=8m", "sqlstore's TestFullStorageRefusesTheBatchAndLosesNothing")

	db := "sqlite:" + filepath.Join(disk, "ledger.db")
	const token = "full-disk-full-disk-full-disk-000"
	cl := startCloud(t, map[string]string{"TILLPOINT_ADMIN_TOKEN": token}, "--db", db, "--key", filepath.Join(dir, "cloud.key"))
	st, j := enrollWithJournal(t, cl, db, filepath.Join(dir, "terminal"))
	epoch := appendEarns(t, j, 50)
	if err := newTestUplink(t, j, st, cl.url).Sync(ctx); err != nil {
		t.Fatalf("sync before the disk fills: %v", err)
	}

	filler := testdisk.Fill(t, disk)
	// Ten batches, on the till's own disk. The first may still fit in
	// the pages the cloud's WAL already has; the rest cannot.
	appendEarns(t, j, 1000)
	for range 3 { // each time refused, as the till's retries would be
		u := newTestUplink(t, j, st, cl.url)
		// The 503's Retry-After (30 s) outlasts the context; 3 s leave a
		// loaded machine time to post the batch and hear the 503.
		short, stop := context.WithTimeout(ctx, 3*time.Second)
		err := u.Sync(short)
		stop()
		if err == nil || !strings.Contains(err.Error(), "storage_full") {
			t.Fatalf("sync on a full disk: %v; want the cloud's 503 storage_full", err)
		}
		if s := u.State(); s.Backlog == 0 || s.Online {
			t.Errorf("till while the cloud's disk is full: backlog %d, online %v; want the refused ops kept, offline", s.Backlog, s.Online)
		}
	}
	status, body := get(t, cl.url+"/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "storage_full") {
		t.Errorf("readyz on a full disk: %d %s; want 503 storage_full", status, body)
	}
	if m := scrapeMetrics(t, cl.url, token); !strings.Contains(m, `route="POST /v1/batches",status="503",outcome="storage_full"}`) {
		t.Errorf("metrics do not count the refused batches as storage_full:\n%s", m)
	}
	// Told once, not once per refused batch (three at least).
	if n := strings.Count(cl.stderr.String(), "the ledger's storage is full: writes are refused"); n != 1 {
		t.Errorf("the cloud's log tells the operator %d times that the storage is full, want once:\n%s", n, cl.stderr.String())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := newTestUplink(t, j, st, cl.url).Sync(ctx); err != nil {
		t.Fatalf("sync once there is room: %v", err)
	}
	if status, body := get(t, cl.url+"/readyz"); status != http.StatusOK {
		t.Errorf("readyz once a batch applied again: %d %s; want 200", status, body)
	}
	if !strings.Contains(cl.stderr.String(), "storage has room again") {
		t.Errorf("the cloud's log does not say the storage has room again:\n%s", cl.stderr.String())
	}
	cl.stop()
	wantEachOpOnce(t, db, st.Terminal, epoch, 1050, "after the disk was full")
}

// get returns the status and body of a GET of url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
