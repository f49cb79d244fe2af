package printeremu

import (
	"fmt"

	"github.com/tillpoint/tillpoint/receipt/escpos"
)

// Printed decodes each job the printer printed (see Jobs) with
// receipt/escpos's Decoder, so a test can read what the customer's receipt
// says: its text lines and its QR and barcode payloads.
func (p *Printer) Printed() ([]*escpos.Doc, error) {
	jobs := p.Jobs()
	docs := make([]*escpos.Doc, 0, len(jobs))
	for i, j := range jobs {
		d, err := escpos.Decode(j)
		if err != nil {
			return docs, fmt.Errorf("printeremu: job %d of %d bytes: %w", i, len(j), err)
		}
		docs = append(docs, d)
	}
	return docs, nil
}
