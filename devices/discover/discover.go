package discover

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ebfe/scard"
	"go.bug.st/serial/enumerator"

	"github.com/tillpoint/tillpoint/devices"
)

// Device is one attached device.
type Device struct {
	ID            devices.ID
	Kind          string // "serial", "pcsc", "usblp", "input"
	Name          string // the product or reader name, as the device reports it
	Manufacturer  string
	Node          string // the kernel's device node, when ID.Path is a stable link to it
	LikelyScanner bool   // an input device that looks like a barcode scanner
}

// Report is everything found, with each source's error apart.
type Report struct {
	Devices []Device
	Errors  []error
}

// Finder lists devices. The zero value looks at the real system; tests
// point the roots at fixtures.
type Finder struct {
	SysRoot  string // "/sys" when empty
	DevRoot  string // "/dev" when empty
	ProcRoot string // "/proc" when empty
	// SkipPCSC and SkipSerial leave those sources out.
	SkipPCSC   bool
	SkipSerial bool
}

func (f Finder) root(r, def string) string {
	if r == "" {
		return def
	}
	return r
}

// All runs every source.
func (f Finder) All(ctx context.Context) Report {
	var r Report
	add := func(ds []Device, err error) {
		r.Devices = append(r.Devices, ds...)
		if err != nil {
			r.Errors = append(r.Errors, err)
		}
	}
	if !f.SkipSerial {
		add(f.SerialPorts())
	}
	if !f.SkipPCSC {
		add(PCSCReaders(ctx))
	}
	add(f.USBLinePrinters())
	add(f.InputDevices())
	return r
}

// SerialPorts lists serial ports with their USB identity; the path is the
// /dev/serial/by-id link when udev made one, which survives replugs.
func (f Finder) SerialPorts() ([]Device, error) {
	ports, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return nil, fmt.Errorf("list serial ports: %w", err)
	}
	byID := f.links(filepath.Join(f.root(f.DevRoot, "/dev"), "serial", "by-id"))
	var out []Device
	for _, p := range ports {
		d := Device{Kind: "serial", Name: p.Product, Manufacturer: p.Manufacturer,
			ID: devices.ID{Path: p.Name}}
		if p.IsUSB {
			d.ID.VID, d.ID.PID, d.ID.Serial = strings.ToLower(p.VID), strings.ToLower(p.PID), p.SerialNumber
		}
		if link, ok := byID[p.Name]; ok {
			d.Node, d.ID.Path = p.Name, link
		}
		out = append(out, d)
	}
	return out, nil
}

// links maps the targets of the symlinks in dir to the links.
func (f Finder) links(dir string) map[string]string {
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		link := filepath.Join(dir, e.Name())
		target, err := filepath.EvalSymlinks(link)
		if err != nil {
			continue
		}
		out[target] = link
	}
	return out
}

// PCSCReaders lists the readers pcscd knows.
func PCSCReaders(context.Context) ([]Device, error) {
	ctx, err := scard.EstablishContext()
	if err != nil {
		return nil, fmt.Errorf("list NFC readers: PC/SC service (pcscd) not reachable: %w", err)
	}
	defer ctx.Release()
	names, err := ctx.ListReaders()
	if errors.Is(err, scard.ErrNoReadersAvailable) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list NFC readers: %w", err)
	}
	out := make([]Device, 0, len(names))
	for _, n := range names {
		out = append(out, Device{Kind: "pcsc", Name: n, ID: devices.ID{Kind: devices.KindNFC, Path: n}})
	}
	return out, nil
}

// USBLinePrinters lists /dev/usb/lp* with the USB identity sysfs gives.
func (f Finder) USBLinePrinters() ([]Device, error) {
	nodes, _ := filepath.Glob(filepath.Join(f.root(f.DevRoot, "/dev"), "usb", "lp*"))
	sort.Strings(nodes)
	var out []Device
	for _, n := range nodes {
		d := Device{Kind: "usblp", ID: devices.ID{Kind: devices.KindPrinter, Path: n}}
		// /sys/class/usbmisc/lp0/device is the USB interface; its parent
		// holds the device's descriptors.
		var dev string
		if iface, err := filepath.EvalSymlinks(filepath.Join(f.root(f.SysRoot, "/sys"), "class", "usbmisc", filepath.Base(n), "device")); err == nil {
			dev = filepath.Dir(iface)
		}
		d.ID.VID = readAttr(dev, "idVendor")
		d.ID.PID = readAttr(dev, "idProduct")
		d.ID.Serial = readAttr(dev, "serial")
		d.Name = readAttr(dev, "product")
		d.Manufacturer = readAttr(dev, "manufacturer")
		out = append(out, d)
	}
	return out, nil
}

func readAttr(dir, name string) string {
	if dir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// InputDevices lists evdev keyboards from /proc/bus/input/devices and marks
// the ones that look like barcode scanners by name or vendor.
func (f Finder) InputDevices() ([]Device, error) {
	path := filepath.Join(f.root(f.ProcRoot, "/proc"), "bus", "input", "devices")
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list input devices: %w", err)
	}
	defer fh.Close()
	return ParseInputDevices(fh, filepath.Join(f.root(f.DevRoot, "/dev"), "input"))
}

// ParseInputDevices reads the format of /proc/bus/input/devices and
// returns the keyboard-like devices (those with a kbd handler) with their
// event node under devDir.
func ParseInputDevices(r io.Reader, devDir string) ([]Device, error) {
	var out []Device
	var cur Device
	var kbd bool
	flush := func() {
		if kbd && cur.ID.Path != "" {
			cur.LikelyScanner = LooksLikeScanner(cur.Name, cur.ID.VID)
			out = append(out, cur)
		}
		cur, kbd = Device{}, false
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if len(line) < 3 || line[1] != ':' {
			continue
		}
		val := strings.TrimSpace(line[2:])
		switch line[0] {
		case 'I': // I: Bus=0003 Vendor=05e0 Product=1200 Version=0110
			cur.Kind = "input"
			cur.ID.Kind = devices.KindScanner
			for _, kv := range strings.Fields(val) {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "Vendor":
					cur.ID.VID = strings.ToLower(v)
				case "Product":
					cur.ID.PID = strings.ToLower(v)
				}
			}
		case 'N': // N: Name="Symbol Technologies, Inc. Symbol Bar Code Scanner"
			_, v, _ := strings.Cut(val, "=")
			cur.Name = strings.Trim(v, `"`)
		case 'U': // U: Uniq=S/N 123
			_, v, _ := strings.Cut(val, "=")
			cur.ID.Serial = strings.TrimSpace(v)
		case 'H': // H: Handlers=sysrq kbd leds event3
			_, v, _ := strings.Cut(val, "=")
			for _, h := range strings.Fields(v) {
				if h == "kbd" {
					kbd = true
				}
				if strings.HasPrefix(h, "event") {
					cur.ID.Path = filepath.Join(devDir, h)
				}
			}
		}
	}
	flush()
	return out, sc.Err()
}

// LooksLikeScanner guesses from an input device's name and USB vendor ID
// whether it is a barcode scanner rather than a keyboard. It is a first
// guess for the installer; the HID reader also tells them apart by the
// rate of keystrokes.
func LooksLikeScanner(name, vid string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"scanner", "barcode", "bar code", "scan", "honeywell", "zebra", "datalogic", "newland", "metrologic", "symbol", "opticon", "hand held", "handheld products"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	switch strings.ToLower(vid) {
	case "05e0", // Symbol / Zebra
		"0c2e", // Honeywell (Metrologic)
		"0536", // Hand Held Products (Honeywell)
		"05f9", // Datalogic
		"1eab", // Newland
		"065a", // Opticon
		"2dd6": // Netum and similar
		return true
	}
	return false
}
