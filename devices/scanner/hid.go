package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tillpoint/tillpoint/devices"
)

// eviocgrab is EVIOCGRAB, _IOW('E', 0x90, int): exclusive access, so the
// scanner's keystrokes do not reach the POS window.
const eviocgrab = 0x40044590

// DefaultMaxKeyGap is the longest pause between two keystrokes of a scan.
// Scanners type a whole label in a few milliseconds per key; a person
// needs 50 ms or more between keys.
const DefaultMaxKeyGap = 40 * time.Millisecond

// minScanKeys is the fewest keys a scan has; shorter lines (a key and
// Enter) come from a person when rate checking is on.
const minScanKeys = 4

// HIDConfig is a keyboard-wedge scanner's settings. Start from
// DefaultHIDConfig.
type HIDConfig struct {
	ID     devices.ID // ID.Path: /dev/input/by-id/usb-...-event-kbd or /dev/input/eventN
	Keymap Keymap     // the layout the scanner emulates; KeymapUS when nil
	EndTab bool       // TAB ends a scan, as Enter does
	// MaxKeyGap: a line with a longer pause between two keys was typed by
	// a person, not scanned, and is dropped. 0 accepts everything.
	MaxKeyGap  time.Duration
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// OpenDevice opens the event device; OpenEvdev (open and grab) when nil.
	OpenDevice func(path string) (io.ReadCloser, error)
	Now        func() time.Time
	Logger     *slog.Logger
}

// DefaultHIDConfig returns the settings of a keyboard-wedge scanner on path.
func DefaultHIDConfig(path string) HIDConfig {
	return HIDConfig{
		ID:         devices.ID{Kind: devices.KindScanner, Path: path},
		MaxKeyGap:  DefaultMaxKeyGap,
		MinBackoff: DefaultMinBackoff,
		MaxBackoff: DefaultMaxBackoff,
	}
}

// OpenEvdev opens an evdev device and grabs it exclusively.
func OpenEvdev(path string) (io.ReadCloser, error) { return openEvdev(path, true) }

// OpenEvdevShared opens an evdev device without grabbing it: the scanner's
// keystrokes also reach the focused window, as a keyboard's do.
func OpenEvdevShared(path string) (io.ReadCloser, error) { return openEvdev(path, false) }

func openEvdev(path string, grab bool) (io.ReadCloser, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is the scanner plugged in, and is this user in group 'input'?)", path, err)
	}
	if !grab {
		return f, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var grabErr error
	// Control, not Fd: Fd would make the descriptor blocking, and Close
	// could no longer interrupt a read.
	if err := rc.Control(func(fd uintptr) { grabErr = unix.IoctlSetPointerInt(int(fd), eviocgrab, 1) }); err != nil {
		f.Close()
		return nil, err
	}
	if grabErr != nil {
		f.Close()
		return nil, fmt.Errorf("grab %s: %w (another program holds the scanner?)", path, grabErr)
	}
	return f, nil
}

// HID is a keyboard-wedge barcode scanner read through Linux evdev.
type HID struct {
	cfg    HIDConfig
	pub    devices.Publisher
	health *devices.Reporter
	log    *slog.Logger
	run    runner
}

// NewHID returns a keyboard-wedge scanner with cfg publishing to pub.
func NewHID(cfg HIDConfig, pub devices.Publisher) *HID {
	cfg.ID.Kind = devices.KindScanner
	if cfg.Keymap == nil {
		cfg.Keymap = KeymapUS()
	}
	if cfg.OpenDevice == nil {
		cfg.OpenDevice = OpenEvdev
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With(devices.KeyDevice, cfg.ID.String())
	return &HID{cfg: cfg, pub: pub, log: log, health: devices.NewReporter(cfg.ID, pub, cfg.Now, log)}
}

// ID is the scanner's identity.
func (h *HID) ID() devices.ID { return h.cfg.ID }

// Health is the scanner's current health.
func (h *HID) Health() devices.Health { return h.health.Get() }

// Open validates the settings and starts reading in the background.
func (h *HID) Open(ctx context.Context) error {
	switch {
	case h.cfg.ID.Path == "":
		return errors.New("scanner: no input device path; set it (e.g. /dev/input/by-id/usb-...-event-kbd)")
	case h.cfg.MinBackoff <= 0 || h.cfg.MaxBackoff < h.cfg.MinBackoff:
		return fmt.Errorf("scanner %s: backoff %v to %v; the minimum must be positive and at most the maximum", h.cfg.ID.Path, h.cfg.MinBackoff, h.cfg.MaxBackoff)
	}
	return h.run.start(ctx, h.cfg.ID.Path, func(ctx context.Context) {
		reconnect(ctx, h.health, h.log, h.cfg.MinBackoff, h.cfg.MaxBackoff,
			func() (io.ReadCloser, error) { return h.cfg.OpenDevice(h.cfg.ID.Path) }, h.read)
	})
}

// Close stops reading, releases the device and waits. Safe to call twice.
func (h *HID) Close(ctx context.Context) error {
	if running, err := h.run.stop(ctx, h.cfg.ID.Path); !running || err != nil {
		return err
	}
	h.health.Set(devices.StateClosed, devices.PowerUnknown, devices.CodeClosed, "Scanner: closed")
	return nil
}

func (h *HID) read(ctx context.Context, r io.ReadCloser) error {
	stop := context.AfterFunc(ctx, func() { _ = r.Close() })
	defer stop()
	return ReadKeys(r, &KeyDecoder{Keymap: h.cfg.Keymap, EndTab: h.cfg.EndTab}, func(l Line) {
		h.line(l)
	})
}

// ReadKeys reads input_event records from r until it fails, feeding d and
// calling emit for each finished line. The HID scanner reads its device
// with it; tests and tools feed it recorded or synthetic records.
func ReadKeys(r io.Reader, d *KeyDecoder, emit func(Line)) error {
	buf := make([]byte, EventSize)
	for {
		e, err := ReadEvent(r, buf)
		if err != nil {
			return err
		}
		if l, ok := d.Feed(e); ok {
			emit(l)
		}
	}
}

func (h *HID) line(l Line) {
	switch {
	case l.Overflow:
		h.pub.Publish(devices.ReadError{Device: h.cfg.ID, At: h.cfg.Now(), Code: devices.CodeOverflow,
			Reason: "Scanner: scan too long, discarded", Err: ErrTooLong})
	case h.cfg.MaxKeyGap > 0 && (l.MaxGap > h.cfg.MaxKeyGap || l.Keys < minScanKeys):
		// A person typing on a keyboard, not a scan: never a card.
		h.log.Info("keyboard input ignored: typed, not scanned", "keys", l.Keys, "max_gap", l.MaxGap)
	default:
		h.pub.Publish(scanOrError(h.cfg.ID, h.cfg.Now(), l.Data, h.log))
	}
}
