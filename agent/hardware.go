package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/printer"
	"github.com/tillpoint/tillpoint/loyalty"
)

// DevicePrinter prints receipts on a devices/printer.Printer.
type DevicePrinter struct {
	P *printer.Printer
}

var _ Printer = DevicePrinter{}

// Print sends one job; the printer never prints a job ID twice.
func (d DevicePrinter) Print(ctx context.Context, jobID string, data []byte) error {
	res, err := d.P.Print(ctx, printer.Job{ID: jobID, Kind: printer.JobPrint, Data: data})
	if err != nil {
		return fmt.Errorf("print job %s: %w", jobID, err)
	}
	if !res.Printed && !res.Duplicate {
		return fmt.Errorf("print job %s: not printed (%s)", jobID, d.P.Health().Reason)
	}
	return nil
}

// HealthOf turns a device's health into the agent's form.
func HealthOf(h devices.Health) DeviceHealth {
	return DeviceHealth{Device: h.Device.String(), Kind: string(h.Device.Kind), State: h.State.String(),
		Power: h.Power.String(), Code: string(h.Code), Reason: h.Reason}
}

// CardFromEvent turns a scan or a tap into a card token. A random-UID NFC
// card (a phone, a bank card) or a misread barcode is an error for the
// cashier, never a card.
func CardFromEvent(e devices.Event) (loyalty.CardToken, string, error) {
	switch e := e.(type) {
	case devices.Scan:
		c, err := loyalty.NewCardToken(loyalty.CardBarcode, e.Label)
		if err != nil {
			return c, SourceScanner, Errorf(CodeInvalid, "This barcode is not a loyalty card; scan the card again.")
		}
		return c, SourceScanner, nil
	case devices.Tap:
		if e.RandomUID {
			return loyalty.CardToken{}, SourceNFC, Errorf(CodeInvalid, "This is a phone or a bank card, not a loyalty card: tap the loyalty card.")
		}
		c, err := loyalty.NewCardToken(loyalty.CardNFC, e.UIDHex())
		if err != nil {
			return c, SourceNFC, Errorf(CodeInvalid, "This NFC card cannot be used as a loyalty card.")
		}
		return c, SourceNFC, nil
	}
	return loyalty.CardToken{}, "", errors.New("not a card read")
}

// RunDevices feeds the agent from a device bus until ctx ends: scans and
// taps open sessions, health changes go to the screen and the metrics.
func (a *Agent) RunDevices(ctx context.Context, bus *devices.Bus) {
	events, stop := bus.Subscribe(64)
	defer stop()
	for _, h := range bus.Health() {
		a.SetDeviceHealth(HealthOf(h))
	}
	reads := make(chan devices.Event)
	go func() {
		defer close(reads)
		for {
			e, err := bus.NextRead(ctx)
			if err != nil {
				return
			}
			select {
			case reads <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			for range reads {
			}
			return
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if h, ok := e.(devices.HealthEvent); ok {
				a.SetDeviceHealth(HealthOf(h.Health))
			}
		case e, ok := <-reads:
			if !ok {
				return
			}
			card, source, err := CardFromEvent(e)
			if err != nil {
				a.log.Info("card read refused", keySource, source, keyErr, err)
				a.publish(EventSession, SessionView{Notice: ErrorMessage(err)})
				continue
			}
			if _, err := a.PresentCard(ctx, card, source); err != nil {
				a.log.Warn("present card", keySource, source, keyErr, err)
			}
		}
	}
}
