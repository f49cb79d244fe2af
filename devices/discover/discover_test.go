package discover_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/discover"
	"github.com/tillpoint/tillpoint/hil-tests/pcscd"
)

func fixture() discover.Finder {
	return discover.Finder{SysRoot: "testdata/sys", DevRoot: "testdata/dev", ProcRoot: "testdata/proc", SkipPCSC: true, SkipSerial: true}
}

func TestInputDevicesKeyboardsOnlyAndScannerGuessed(t *testing.T) {
	ds, err := fixture().InputDevices()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("got %d keyboard-like devices, want 3 (power button, keyboard, scanner; not the mouse)", len(ds))
	}
	sc := ds[2]
	want := devices.ID{Kind: devices.KindScanner, VID: "05e0", PID: "1200", Serial: "S/N:83B4F6B2A1", Path: filepath.Join("testdata/dev", "input", "event5")}
	if sc.ID != want || !sc.LikelyScanner {
		t.Errorf("scanner = %+v, want %+v and likely scanner", sc, want)
	}
	if ds[1].LikelyScanner {
		t.Errorf("the Logitech keyboard was taken for a scanner")
	}
}

func TestUSBLinePrinterIdentityFromSysfs(t *testing.T) {
	// sysfs's device link points at the interface; the fixture keeps the
	// descriptors one level up, as the real tree does.
	ds, err := fixture().USBLinePrinters()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 {
		t.Fatalf("got %d printers, want 1", len(ds))
	}
	want := devices.ID{Kind: devices.KindPrinter, VID: "0fe6", PID: "811e", Serial: "PRN123", Path: filepath.Join("testdata/dev", "usb", "lp0")}
	if ds[0].ID != want || ds[0].Name != "POS80" {
		t.Errorf("printer = %+v, want %+v named POS80", ds[0], want)
	}
	if !ds[0].ID.Match(devices.ID{VID: "0FE6", PID: "811E"}) {
		t.Error("config by VID:PID does not match the printer found")
	}
}

func TestPCSCReadersListsTheVirtualReader(t *testing.T) {
	env := pcscd.Ensure(t)
	env.Lock(t) // another package's test may be restarting pcscd
	ds, err := discover.PCSCReaders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Name == env.Reader && d.ID.Kind == devices.KindNFC {
			return
		}
	}
	t.Errorf("readers = %+v, want %q among them", ds, env.Reader)
}

func TestSerialPortsDoesNotFail(t *testing.T) {
	if _, err := (discover.Finder{}).SerialPorts(); err != nil {
		t.Errorf("SerialPorts: %v", err)
	}
}
