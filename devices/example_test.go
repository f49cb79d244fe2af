package devices_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tillpoint/tillpoint/devices"
)

// The agent wires every driver to one Bus: drivers Publish, the checkout
// session takes the next scan or tap with NextRead, and the cashier screen
// subscribes to everything (health included).
func ExampleBus() {
	bus := devices.NewBus()
	screen, stop := bus.Subscribe(8)

	// What a scanner driver does (scanner.NewSerial(cfg, bus) in real life):
	id := devices.ID{Kind: devices.KindScanner, VID: "05e0", PID: "1200", Path: "/dev/serial/by-id/usb-Zebra-if00"}
	bus.Publish(devices.HealthEvent{Health: devices.Health{Device: id, State: devices.StateIdle, Power: devices.PowerOnline, Code: devices.CodeOK, Reason: "Scanner: ready"}})
	bus.Publish(devices.Scan{Device: id, Label: "2012345678903", Symbology: devices.SymEAN13, AIM: "]E0"})

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e, _ := bus.NextRead(ctx)
	fmt.Println(e.(devices.Scan)) // String redacts the card number

	stop()
	for e := range screen {
		if h, ok := e.(devices.HealthEvent); ok {
			fmt.Println(h.Reason)
		}
	}
	// Output:
	// scan scanner:usb:05e0:1200@/dev/serial/by-id/usb-Zebra-if00 EAN-13 …8903
	// Scanner: ready
}
