package receipt

import (
	"fmt"

	"github.com/tillpoint/tillpoint/receipt/escpos"
)

// PrintOptions say how a block goes to an ESC/POS printer.
type PrintOptions struct {
	// Width is the roll's width in columns of font A; 0 means 42.
	Width int
	// CodePage is the printer's character table; the zero value is CP437,
	// which every printer has. CP858 or WPC1252 print the euro sign.
	CodePage escpos.CodePage
	// QRModuleSize is the side of a QR module in dots; 0 picks 5 for
	// widths up to 32 columns (a 58 mm roll) and 7 above.
	QRModuleSize int
	// Init starts with ESC @, for a block printed on its own.
	Init bool
	// Cut feeds and cuts the paper after the block.
	Cut bool
}

// ESCPOS renders the block as ESC/POS commands. The styles it sets (bold,
// size, alignment) are reset at its end, so the rest of a receipt prints as
// before it.
func (b Block) ESCPOS(opts PrintOptions) ([]byte, error) {
	pb := escpos.NewBuilder(64 * (len(b.Elements) + 8))
	if err := b.AppendESCPOS(pb, opts); err != nil {
		return nil, err
	}
	return pb.Bytes()
}

// AppendESCPOS writes the block's commands into a builder that may hold
// the rest of the receipt.
func (b Block) AppendESCPOS(pb *escpos.Builder, opts PrintOptions) error {
	if !opts.CodePage.Valid() {
		return fmt.Errorf("receipt: code page %d: use CP437, CP850, CP858 or WPC1252", opts.CodePage)
	}
	width := opts.Width
	if width == 0 {
		width = Width80mm
	}
	if width < MinWidth || width > MaxWidth {
		return fmt.Errorf("receipt: width %d columns: use %d to %d (32 for 58 mm rolls, 42 or 48 for 80 mm)", width, MinWidth, MaxWidth)
	}
	module := opts.QRModuleSize
	if module == 0 {
		module = 7
		if width <= Width58mm {
			module = 5
		}
	}
	if opts.Init {
		pb.Init()
	}
	pb.CodePage(opts.CodePage)
	var cur line // what the printer is set to: normal, left
	for _, l := range b.lines(width, opts.CodePage.Printable) {
		if l.align != cur.align {
			pb.Align(l.align)
		}
		if l.qr != "" {
			pb.QR(l.qr, escpos.QR{ModuleSize: module, Level: escpos.ECLevelM})
			cur.align = l.align
			continue
		}
		if l.bold != cur.bold {
			pb.Bold(l.bold)
		}
		if l.large != cur.large || l.tall != cur.tall {
			h := 1
			if l.large || l.tall {
				h = 2
			}
			pb.Size(l.mult(), h)
		}
		pb.Line(l.text)
		cur = l
	}
	if cur.bold {
		pb.Bold(false)
	}
	if cur.large || cur.tall {
		pb.Size(1, 1)
	}
	if cur.align != escpos.Left {
		pb.Align(escpos.Left)
	}
	if opts.Cut {
		pb.Feed(3).Cut()
	}
	_, err := pb.Bytes()
	if err != nil {
		return fmt.Errorf("receipt: encode block: %w", err)
	}
	return nil
}
