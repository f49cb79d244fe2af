package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/internal/syncbuf"
)

// The cashier screen of a demo till, in headless Debian chromium, through a
// real outage: the store's link to the real cloud is cut, then restored.
func TestCashierScreenThroughRealOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a store and a browser; skipped with -short")
	}
	node := needBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := &demo{out: io.Discard, dir: t.TempDir(), logs: &syncbuf.Buffer{}}
	d.logger = slog.New(slog.NewJSONHandler(d.logs, nil))
	defer d.close()
	if err := d.setUp(ctx); err != nil {
		t.Fatal(err)
	}
	steps := map[string]func(){
		"tap":     func() { d.t1.tap(cardAna) },
		"outage":  func() { d.net.SetDown(true) },
		"recover": func() { d.net.SetDown(false) },
	}
	mux := http.NewServeMux()
	for name, fn := range steps {
		mux.HandleFunc("POST /"+name, func(http.ResponseWriter, *http.Request) { fn() })
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	script := filepath.Join("..", "..", "agent", "screen", "e2e", "outage.mjs")
	out, err := exec.CommandContext(ctx, node, script, d.t1.URL()+"/", "http://"+ln.Addr().String()).CombinedOutput()
	t.Logf("browser:\n%s", out)
	if err != nil {
		t.Fatalf("the cashier screen failed in chromium: %v", err)
	}
}

// needBrowser returns node, or skips (fails under TILLPOINT_HIL=require)
// when chromium, node or playwright-core is missing.
func needBrowser(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		msg := fmt.Sprintf("the cashier screen browser test needs %s; run 'make deps' (Debian chromium, node, npm ci in agent/screen)", what)
		if os.Getenv("TILLPOINT_HIL") == "require" {
			t.Fatal(msg + " (TILLPOINT_HIL=require)")
		}
		t.Skip(msg)
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		missing("/usr/bin/chromium")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node")
	}
	if _, err := os.Stat(filepath.Join("..", "..", "agent", "screen", "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core in agent/screen/node_modules")
	}
	return node
}
