package storetest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/hil"
	"github.com/tillpoint/tillpoint/internal/syncbuf"
)

// PgBouncer starts PgBouncer in front of the test server, pooling by
// transaction (each transaction, or statement outside one, goes to
// whichever of its sessions is free) over at most sessions server
// sessions, for the schema schemaURL reaches (PostgresSchema), and returns
// the URL that reaches that schema through it. PgBouncer stops when the
// test ends.
//
// PgBouncer does not pass a client's search_path on, so the schema is
// set on each server session as PgBouncer opens it. PgBouncer will not
// run as root: under root it runs as the postgres user. The test is
// skipped when pgbouncer is not installed (`make deps` installs it), and
// fails instead when TILLPOINT_HIL=require.
func PgBouncer(t testing.TB, schemaURL string, sessions int) string {
	t.Helper()
	bin := hil.NeedCommand(t, "pgbouncer")
	server, err := url.Parse(schemaURL)
	if err != nil {
		t.Fatalf("parse %s: %v", schemaURL, err)
	}
	schema := server.Query().Get("search_path")
	if schema == "" {
		t.Fatalf("%s names no schema (search_path): make it with PostgresSchema", schemaURL)
	}
	dir, err := os.MkdirTemp("", "tillpoint-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The postgres user must read what root wrote.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	userName := server.User.Username()
	if userName == "" {
		t.Fatalf("%s names no user: PgBouncer's list of users needs one", schemaURL)
	}
	db := server.Path[1:]
	config := fmt.Sprintf(`[databases]
%s = host=%s port=%s dbname=%s user=%s connect_query='SET search_path TO %s'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 200
`, db, server.Hostname(), server.Port(), db, userName, schema, port, filepath.Join(dir, "users.txt"), sessions)
	for name, body := range map[string]string{"pgbouncer.ini": config, "users.txt": strconv.Quote(userName) + ` ""` + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out syncbuf.Buffer
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := asPostgres(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("pgbouncer exited (%v):\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgbouncer does not listen on %s after 10 s:\n%s", addr, out.String())
		}
	}
	pooled := *server
	pooled.Host = addr
	q := pooled.Query()
	q.Del("search_path")
	pooled.RawQuery = q.Encode()
	return pooled.String()
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
