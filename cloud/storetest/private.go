package storetest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/tillpoint/tillpoint/hil-tests/hil"
)

// PrivateServer is a PostgreSQL server of a test's own, for tests that
// stop and start it: the shared test server must keep serving the other
// packages' tests that run meanwhile.
type PrivateServer struct {
	// URL reaches the server's postgres database as the postgres user.
	URL string
	t   testing.TB
	dir string // the data directory
	bin string // the directory of initdb and pg_ctl
}

// PrivatePostgres makes a new PostgreSQL cluster in a temporary directory
// (initdb) and starts it on a free port of 127.0.0.1, with trust
// authentication and without fsync (a test's data need not survive the
// machine). It stops when the test ends. It needs the server's programs
// (Debian's postgresql package) and, under root, the postgres user to run
// them as; the test skips without them, and fails instead when
// TILLPOINT_HIL=require.
func PrivatePostgres(t testing.TB) *PrivateServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		hil.Missing(t, "PostgreSQL's server programs (initdb, pg_ctl) are not installed")
	}
	dir, err := os.MkdirTemp("", "tillpoint-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := chownToPostgres(dir); err != nil {
		t.Fatal(err)
	}
	s := &PrivateServer{t: t, dir: filepath.Join(dir, "data"), bin: filepath.Dir(bins[len(bins)-1])}
	port := freePort(t)
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	s.run("initdb", "-D", s.dir, "-U", "postgres", "-A", "trust", "--no-sync")
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\n", port, dir)
	if err := appendFile(filepath.Join(s.dir, "postgresql.conf"), conf); err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(s.dir, "postmaster.pid")); err == nil { // not left stopped by a failed test
			s.run("pg_ctl", "-D", s.dir, "-m", "immediate", "-w", "stop")
		}
	})
	return s
}

// Start starts the server and waits until it accepts connections.
func (s *PrivateServer) Start() {
	s.t.Helper()
	s.run("pg_ctl", "-D", s.dir, "-l", filepath.Join(filepath.Dir(s.dir), "server.log"), "-w", "start")
}

// Stop stops the server as a fast shutdown does: every session is ended
// (57P01) and transactions in flight roll back.
func (s *PrivateServer) Stop() {
	s.t.Helper()
	s.run("pg_ctl", "-D", s.dir, "-m", "fast", "-w", "stop")
}

// run runs one of the server's programs as the postgres user.
func (s *PrivateServer) run(program string, args ...string) {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, program), args...)
	if err := asPostgres(cmd); err != nil {
		s.t.Fatal(err)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(filepath.Dir(s.dir), "server.log"))
		s.t.Fatalf("%s %v: %v\n%s\nserver log:\n%s", program, args, err, out, log)
	}
}

// asPostgres has cmd run as the postgres user when this process is root:
// PostgreSQL and PgBouncer will not run as root.
func asPostgres(cmd *exec.Cmd) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, err := postgresIDs()
	if err != nil {
		return err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	return nil
}

// chownToPostgres gives dir to the postgres user when this process is
// root, so that the server's programs may write in it.
func chownToPostgres(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, err := postgresIDs()
	if err != nil {
		return err
	}
	return os.Chown(dir, int(uid), int(gid))
}

func postgresIDs() (uid, gid uint32, err error) {
	pg, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("PostgreSQL's programs will not run as root, and there is no postgres user to run them as: %w", err)
	}
	u, _ := strconv.ParseUint(pg.Uid, 10, 32)
	g, _ := strconv.ParseUint(pg.Gid, 10, 32)
	return uint32(u), uint32(g), nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
