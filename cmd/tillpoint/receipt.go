package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/receipt"
	"github.com/tillpoint/tillpoint/receipt/escpos"
)

const receiptUsage = `Preview the loyalty block of a receipt, for people designing a program's receipt.

The input file (--in) is either one operation as the journal records it
(loyalty.Op JSON), or a whole checkout:

  {
    "ops":      [ {...op...}, ... ],          the checkout's operations, in order
    "rules":    { ...rules... },              optional: reasons and reward names
    "reasons":  [ {"code":"base","label":"Base 1 pt / 1.00","points":42} ],
    "card":     "barcode:2012345678903",      optional: printed masked
    "member":   { ...snapshot after the ops... },
    "offline":  true, "as_of": "2026-11-28T13:48:00+01:00",
    "location": "Europe/Madrid",
    "layout":   { ...layout... }              optional; --layout wins
  }

When the rules and an earn's basket are given without reasons, the reasons
are computed with the rules. A purchase without a card prints its claim QR
code signed with a throwaway key: the code is a sample, not claimable.

PNG and ESC/POS are binary: write them with --out FILE.`

// checkoutFile is the JSON a receipt preview reads; it is the CLI's own
// type so the domain types can change without breaking saved files.
type checkoutFile struct {
	Ops      []loyalty.Op      `json:"ops"`
	Rules    *loyalty.Rules    `json:"rules,omitempty"`
	Reasons  []loyalty.Reason  `json:"reasons,omitempty"`
	Card     string            `json:"card,omitempty"`
	Member   *loyalty.Snapshot `json:"member,omitempty"`
	Offline  bool              `json:"offline,omitempty"`
	AsOf     time.Time         `json:"as_of,omitzero"`
	Location string            `json:"location,omitempty"`
	Layout   json.RawMessage   `json:"layout,omitempty"`
}

func (m *Main) runReceipt(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "preview" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintf(m.Stdout, "Usage: tillpoint receipt preview [flags]\n\n%s\n", receiptUsage)
			return errHelpShown
		}
		return usageError("want 'tillpoint receipt preview --in checkout.json' (see 'tillpoint receipt --help')")
	}
	return m.runReceiptPreview(ctx, args[1:])
}

func (m *Main) runReceiptPreview(_ context.Context, args []string) error {
	fs := newFlagSet(m.Stderr, "receipt preview", "receipt preview --in FILE [--width 42] [--format text|png|escpos] [--out FILE]", receiptUsage)
	in := fs.String("in", "", "the checkout or op `file` (JSON) to print; - reads standard input")
	width := fs.Int("width", receipt.Width80mm, "roll width in `columns`: 32 (58 mm), 42 or 48 (80 mm)")
	format := fs.String("format", "text", "output `format`: text, png or escpos")
	out := fs.String("out", "", "write to this `file` instead of standard output")
	layoutPath := fs.String("layout", "", "the program's layout `file` (JSON); the built-in one when empty")
	lang := fs.String("lang", "", "catalogue `language` of the built-in layout: en or es (default en)")
	page := fs.String("codepage", "cp858", "printer `code page` for escpos: cp437, cp850, cp858 or wpc1252")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q; the input is given with --in", fs.Arg(0))
	}
	if *in == "" {
		return usageError("--in is required: the checkout or op JSON to preview")
	}
	if *width < receipt.MinWidth || *width > receipt.MaxWidth {
		return usageError("--width %d: use 32 for 58 mm rolls, 42 or 48 for 80 mm", *width)
	}
	cp, err := escpos.ParseCodePage(*page)
	if err != nil {
		return usageError("--codepage: %v", err)
	}
	if *format != "text" && *format != "png" && *format != "escpos" {
		return usageError("--format %q: use text, png or escpos", *format)
	}
	if *format != "text" && *out == "" {
		if f, ok := m.Stdout.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				return usageError("--format %s is binary; add --out FILE", *format)
			}
		}
	}

	input, err := m.readCheckout(*in, *layoutPath, *lang)
	if err != nil {
		return err
	}
	block, err := receipt.Build(input)
	if err != nil {
		return fmt.Errorf("build the block: %w", err)
	}
	var data []byte
	switch *format {
	case "text":
		data = []byte(block.Text(*width))
	case "png":
		data, err = block.PNG(*width)
	case "escpos":
		data, err = block.ESCPOS(receipt.PrintOptions{Width: *width, CodePage: cp, Init: true, Cut: true})
	}
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = m.Stdout.Write(data)
		return err
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return fmt.Errorf("write the preview: %w", err)
	}
	return nil
}

// readCheckout reads the preview's input and turns it into a receipt.Input.
func (m *Main) readCheckout(path, layoutPath, lang string) (receipt.Input, error) {
	var raw []byte
	var err error
	if path == "-" {
		var buf bytes.Buffer
		_, err = buf.ReadFrom(m.Stdin)
		raw = buf.Bytes()
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return receipt.Input{}, fmt.Errorf("read the checkout: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return receipt.Input{}, fmt.Errorf("%s is not a JSON object: %w", path, err)
	}
	var cf checkoutFile
	if _, ok := probe["ops"]; ok {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cf); err != nil {
			return receipt.Input{}, fmt.Errorf("%s: %w (see 'tillpoint receipt --help' for the format)", path, err)
		}
	} else {
		var op loyalty.Op
		if err := json.Unmarshal(raw, &op); err != nil {
			return receipt.Input{}, fmt.Errorf("%s: not an op nor a checkout: %w", path, err)
		}
		cf.Ops = []loyalty.Op{op}
	}
	if len(cf.Ops) == 0 {
		return receipt.Input{}, fmt.Errorf("%s: no ops to print", path)
	}
	for i := range cf.Ops {
		if err := cf.Ops[i].Validate(); err != nil {
			return receipt.Input{}, fmt.Errorf("%s: op %d: %w", path, i+1, err)
		}
	}

	in := receipt.Input{Ops: cf.Ops, Rules: cf.Rules, Reasons: cf.Reasons, Member: cf.Member,
		Offline: cf.Offline, AsOf: cf.AsOf}
	if cf.Card != "" {
		if in.Card, err = loyalty.ParseCardToken(cf.Card); err != nil {
			return receipt.Input{}, fmt.Errorf("%s: card: %w", path, err)
		}
	}
	if cf.Location != "" {
		if in.Location, err = time.LoadLocation(cf.Location); err != nil {
			return receipt.Input{}, fmt.Errorf("%s: location: %w", path, err)
		}
	}
	if cf.Rules != nil && cf.Reasons == nil {
		for _, op := range cf.Ops {
			if op.Kind != loyalty.OpEarn || op.Basket == nil {
				continue
			}
			var snap loyalty.Snapshot
			if cf.Member != nil {
				snap = *cf.Member
			}
			if _, in.Reasons, err = cf.Rules.Earn(*op.Basket, snap, op.WallTime); err != nil {
				return receipt.Input{}, fmt.Errorf("%s: compute the reasons: %w", path, err)
			}
		}
	}

	layoutJSON := []byte(cf.Layout)
	if layoutPath != "" {
		if layoutJSON, err = os.ReadFile(layoutPath); err != nil {
			return receipt.Input{}, fmt.Errorf("read the layout: %w", err)
		}
	}
	switch {
	case len(layoutJSON) > 0:
		if in.Layout, err = receipt.ParseLayout(layoutJSON); err != nil {
			return receipt.Input{}, err
		}
	default:
		program := ""
		if cf.Rules != nil {
			program = cf.Rules.Program
		}
		if lang == "" {
			lang = "en"
		}
		if in.Layout, err = receipt.DefaultLayout(program, lang); err != nil {
			return receipt.Input{}, usageError("--lang: %v", err)
		}
	}
	if lang != "" && len(layoutJSON) > 0 && in.Layout.Language != lang {
		return receipt.Input{}, usageError("--lang %s, but the layout is in %q; change the layout's language instead", lang, in.Layout.Language)
	}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return receipt.Input{}, fmt.Errorf("make a throwaway claim key: %w", err)
	}
	in.TerminalKey = priv
	return in, nil
}
