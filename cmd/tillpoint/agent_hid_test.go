package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/agent/config"
	"github.com/tillpoint/tillpoint/devices/discover"
	"github.com/tillpoint/tillpoint/devices/scanner"
)

// typeScan returns the input_event records a keyboard-wedge scanner sends
// for digits and Enter: press, release and SYN_REPORT per key, 4 ms apart.
func typeScan(digits string) []byte {
	var out bytes.Buffer
	at := time.Now()
	key := func(code uint16) {
		for _, v := range []int32{1, 0} {
			out.Write(scanner.EncodeEvent(scanner.InputEvent{Time: at, Type: 1, Code: code, Value: v}))
			out.Write(scanner.EncodeEvent(scanner.InputEvent{Time: at, Type: 0}))
		}
		at = at.Add(4 * time.Millisecond)
	}
	for _, c := range digits {
		code := uint16(c-'0') + 1 // KEY_1 is 2 ... KEY_9 is 10
		if c == '0' {
			code = 11
		}
		key(code)
	}
	key(28) // KEY_ENTER
	return out.Bytes()
}

// A HID (keyboard-wedge) scanner in agent.toml, matched by its USB VID:PID
// among the input devices, reaches the agent through the same wiring as
// `tillpoint agent`: a scan opens a checkout session with the card, masked.
// There is no /dev/uinput here to make a real evdev node, so the input
// devices come from a /proc/bus/input/devices fixture and the device node
// is a pipe: everything after the open (evdev records, the key decoder,
// the scan parser, the device bus, the session) is the real path.
func TestHIDScannerScanOpensASession(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		grab        bool
		path        string // the device the wiring opens
	}{
		// The fixture's Symbol scanner (05e0:1200) is event5; the keyboard (event3) is not it.
		{"by VID:PID, grabbed by default", "usb = \"05e0:1200\"\n", true, "/dev/input/event5"},
		{"by VID:PID, shared with grab = false", "usb = \"05e0:1200\"\ngrab = false\n", false, "/dev/input/event5"},
		{"by path", "path = \"/dev/input/by-id/usb-Symbol_Bar_Code_Scanner-event-kbd\"\n", true,
			"/dev/input/by-id/usb-Symbol_Bar_Code_Scanner-event-kbd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := writeAgentConfig(t, dir, "[[scanner]]\nname = \"handheld\"\nkind = \"hid\"\n"+tc.extra)
			cfg, err := config.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			fixtures := filepath.Join("..", "..", "devices", "discover", "testdata")
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var mu sync.Mutex
			var opened []string
			tune := &wireTuning{
				finder: discover.Finder{ProcRoot: filepath.Join(fixtures, "proc"), DevRoot: "/dev", SkipPCSC: true, SkipSerial: true},
				openInput: func(path string, grab bool) (io.ReadCloser, error) {
					mu.Lock()
					defer mu.Unlock()
					opened = append(opened, path)
					if grab != tc.grab {
						t.Errorf("input device opened with grab %v, want %v", grab, tc.grab)
					}
					return r, nil
				},
				syncPoll: 50 * time.Millisecond,
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			wr, err := openWiring(ctx, cfg, slog.New(slog.DiscardHandler), "test", tune)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			defer func() {
				stop() // as the agent command does on SIGTERM, then close
				if err := wr.close(context.WithoutCancel(ctx)); err != nil {
					t.Errorf("close: %v", err)
				}
			}()
			wr.start(runCtx)

			if _, err := w.Write(typeScan("2012345678903")); err != nil {
				t.Fatal(err)
			}
			if err := waitFor(ctx, 10*time.Second, "the scan to open a session", func() bool { return wr.agent.Session(ctx).Open }); err != nil {
				t.Fatal(err)
			}
			s := wr.agent.Session(ctx)
			if !strings.HasSuffix(s.Card, "8903") || strings.Contains(s.Card, "2012345678903") {
				t.Errorf("session card: got %q, want the scanned card masked (…8903)", s.Card)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(opened) == 0 || opened[0] != tc.path {
				t.Errorf("opened %q, want %s", opened, tc.path)
			}
		})
	}
}
