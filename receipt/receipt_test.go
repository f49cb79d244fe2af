package receipt_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/receipt"
	"github.com/tillpoint/tillpoint/receipt/escpos"
)

var widths = []int{receipt.Width58mm, receipt.Width80mm, receipt.Width80mmWide}

func TestTextPreviewsMatchGolden(t *testing.T) {
	for _, sc := range scenarios(t) {
		b := build(t, sc.in)
		for _, w := range widths {
			t.Run(fmt.Sprintf("%s/%d", sc.name, w), func(t *testing.T) {
				golden(t, fmt.Sprintf("text/%s_%d.txt", sc.name, w), []byte(b.Text(w)))
			})
		}
	}
}

// The block says everything the issue lists, in the words it gives.
func TestBlockShowsWhatTheMemberNeedsToKnow(t *testing.T) {
	sc := scenarios(t)
	for _, tc := range []struct {
		scenario string
		width    int
		want     []string
		not      []string
	}{
		{"member", 42, []string{
			"Card                              ••••8903",
			"Base 1 pt / 1.00                        42",
			"Double points weekend x2                42",
			"Coffee bonus                            10",
			"Total earned                            94",
			"Redeemed: Free coffee                 -150",
			"Balance                          1,244 pts",
			"Tier                                Silver",
			"756 points to Gold",
			"50 points expire on 1 Jan 2027", // 23:00 UTC on 31 Dec is 1 Jan in Madrid
		}, []string{"80 points", "as of", "claim"}},
		{"offline", 48, []string{"Balance as of 13:48, updates when back online"}, nil},
		{"cardless", 42, []string{"Scan to claim 94 points", "[QR]", "Claim by 28 Dec 2026"},
			[]string{"Card", "Balance", "Points earned"}},
		{"member_es", 42, []string{
			"Tarjeta", "Puntos base                             42", "Double points weekend x2",
			"Canjeado: Free coffee", "Saldo                            1.244 pts", "Faltan 756 puntos para Gold",
			"50 puntos caducan el 01/01/2027",
		}, nil},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			var in receipt.Input
			for _, s := range sc {
				if s.name == tc.scenario {
					in = s.in
				}
			}
			b := build(t, in)
			text := b.Text(tc.width)
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("missing %q in\n%s", w, text)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(text, w) {
					t.Errorf("unexpected %q in\n%s", w, text)
				}
			}
		})
	}
}

// Invariant 7: the card number never appears in the clear, in any output.
func TestCardNeverPrintsInTheClear(t *testing.T) {
	for _, sc := range scenarios(t) {
		b := build(t, sc.in)
		for _, w := range widths {
			p, err := b.ESCPOS(receipt.PrintOptions{Width: w, CodePage: escpos.WPC1252})
			if err != nil {
				t.Fatal(err)
			}
			for _, out := range []string{b.Text(w), string(p), fmt.Sprintf("%+v", b)} {
				if strings.Contains(out, cardNumber[:9]) {
					t.Fatalf("%s at %d: card number in the clear:\n%s", sc.name, w, out)
				}
			}
		}
	}
}

func TestNoLineIsWiderThanTheRoll(t *testing.T) {
	for _, sc := range scenarios(t) {
		b := build(t, sc.in)
		for _, w := range []int{24, 32, 42, 48, 64} {
			for _, l := range strings.Split(strings.TrimSuffix(b.Text(w), "\n"), "\n") {
				if n := utf8.RuneCountInString(l); n > w {
					t.Errorf("%s at %d columns: line of %d: %q", sc.name, w, n, l)
				}
			}
			p, err := b.ESCPOS(receipt.PrintOptions{Width: w, CodePage: escpos.CP437})
			if err != nil {
				t.Fatal(err)
			}
			doc, err := escpos.Decode(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range doc.Lines {
				if n := utf8.RuneCountInString(l.Text) * l.Width; n > w {
					t.Errorf("%s at %d columns: printed line of %d columns: %q", sc.name, w, n, l.Text)
				}
			}
		}
	}
}

// What the printer prints is what the text preview shows, through the code
// page's fallbacks (• prints as * on a page without it).
func TestPrinterPrintsWhatTheTextPreviewShows(t *testing.T) {
	for _, sc := range scenarios(t) {
		b := build(t, sc.in)
		for _, w := range widths {
			for _, page := range escpos.CodePages() {
				p, err := b.ESCPOS(receipt.PrintOptions{Width: w, CodePage: page, Init: true, Cut: true})
				if err != nil {
					t.Fatal(err)
				}
				doc, err := escpos.Decode(p)
				if err != nil {
					t.Fatalf("%s %d %s: decode: %v", sc.name, w, page, err)
				}
				var want strings.Builder
				for _, l := range strings.SplitAfter(b.Text(w), "\n") {
					want.WriteString(page.Printable(strings.TrimSuffix(l, "\n")))
					if strings.HasSuffix(l, "\n") {
						want.WriteString("\n")
					}
				}
				want.WriteString("\n\n\n") // Cut feeds three lines
				if got := doc.Text(w); got != want.String() {
					t.Errorf("%s %d %s: printer prints\n%s\npreview shows\n%s", sc.name, w, page, got, want.String())
				}
				if len(doc.Cuts) != 1 {
					t.Errorf("%s %d %s: %d cuts, want 1", sc.name, w, page, len(doc.Cuts))
				}
			}
		}
	}
}

// A purchase without a card prints a QR code whose token the cloud can
// verify with the terminal's public key, for the op's points.
func TestCardlessPurchasePrintsAVerifiableClaim(t *testing.T) {
	var in receipt.Input
	for _, s := range scenarios(t) {
		if s.name == "cardless" {
			in = s.in
		}
	}
	b := build(t, in)
	p, err := b.ESCPOS(receipt.PrintOptions{Width: 32})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := escpos.Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Codes) != 1 || doc.Codes[0].Kind != "QR" {
		t.Fatalf("codes %+v, want one QR", doc.Codes)
	}
	qr := doc.Codes[0]
	if qr.Data != b.Claim || qr.Level != escpos.ECLevelM || qr.ModuleSize != 5 || qr.Align != escpos.Center {
		t.Fatalf("QR %+v, want the claim token at level M, module 5, centered", qr)
	}
	op := in.Ops[0]
	claim, err := loyalty.VerifyClaim(terminalKey().Public().(ed25519.PublicKey), qr.Data, op.WallTime)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if claim.Op != op.ID || claim.Points != op.Points || claim.Receipt != op.Receipt {
		t.Fatalf("claim %+v, want op %s, %d points, receipt %s", claim, op.ID, op.Points, op.Receipt)
	}
	if strings.Contains(b.Text(42), b.Claim[8:20]) {
		t.Fatal("the text preview shows the claim token; it must show [QR] only")
	}
}

func TestBuildRefusesWhatItCannotPrintHonestly(t *testing.T) {
	var cardless receipt.Input
	for _, s := range scenarios(t) {
		if s.name == "cardless" {
			cardless = s.in
		}
	}
	if _, err := receipt.Build(receipt.Input{}); !errors.Is(err, receipt.ErrNoOps) {
		t.Errorf("no ops: got %v, want ErrNoOps", err)
	}
	cardless.TerminalKey = nil
	if _, err := receipt.Build(cardless); !errors.Is(err, receipt.ErrNoClaimKey) {
		t.Errorf("cardless without key: got %v, want ErrNoClaimKey", err)
	}
}

func TestLongLabelsWrapAndKeepTheirAmountRightAligned(t *testing.T) {
	sc := scenarios(t)[0]
	sc.in.Reasons = append(sc.in.Reasons, loyalty.Reason{Code: "campaign", Ref: "x",
		Label: "Autumn festival of local producers and organic farms x1.5", Points: 1234})
	b := build(t, sc.in)
	text := b.Text(32)
	want := "Autumn festival of local\nproducers and organic\nfarms x1.5                 1,234\n"
	if !strings.Contains(text, want) {
		t.Fatalf("want\n%s\nin\n%s", want, text)
	}
}

func TestParseLayoutFollowsTheTemplate(t *testing.T) {
	l, err := receipt.ParseLayout([]byte(`{
		"program": "Club Verde", "language": "en",
		"messages": {"balance": "Your points"},
		"sections": [
			{"kind": "balance", "bold": true},
			{"kind": "title", "text": "Thank you, {program}", "align": "right"},
			{"kind": "tier"}
		]}`))
	if err != nil {
		t.Fatal(err)
	}
	sc := scenarios(t)[0]
	sc.in.Layout = l
	got := build(t, sc.in).Text(32)
	want := "Your points            1,244 pts\n" +
		"           Thank you, Club Verde\n" +
		"Tier                      Silver\n" +
		"756 points to Gold\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestParseLayoutRejectsMistakes(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"unknown field", `{"language":"en","sections":[{"kind":"rule"}],"colour":"red"}`, "unknown field"},
		{"unknown kind", `{"language":"en","sections":[{"kind":"weather"}]}`, `unknown kind "weather"`},
		{"bad align", `{"language":"en","sections":[{"kind":"rule","align":"middle"}]}`, "alignment"},
		{"unknown language", `{"language":"fr","sections":[{"kind":"rule"}]}`, "no message catalogue"},
		{"unknown message", `{"language":"es","messages":{"balanse":"x"},"sections":[{"kind":"rule"}]}`, `unknown message key "balanse"`},
		{"no sections", `{"language":"en","sections":[]}`, "no sections"},
		{"title without text", `{"language":"en","sections":[{"kind":"title"}]}`, "needs its text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := receipt.ParseLayout([]byte(tc.json))
			if !errors.Is(err, receipt.ErrInvalidLayout) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidLayout saying %q", err, tc.want)
			}
		})
	}
}

func TestPrintOptionsAreChecked(t *testing.T) {
	b := build(t, scenarios(t)[0].in)
	for _, opts := range []receipt.PrintOptions{{Width: 10}, {Width: 200}, {CodePage: 5}} {
		if _, err := b.ESCPOS(opts); err == nil {
			t.Errorf("%+v: got no error, want one", opts)
		}
	}
}

// Whatever the rules call a campaign and whatever the width, no line
// overflows the roll, and the printer prints what the preview shows.
func FuzzBlockFitsTheRoll(f *testing.F) {
	f.Add("Double points weekend x2", int64(42), uint8(32))
	f.Add("Autumn festival of local producers and organic farms x1.5", int64(1234567), uint8(42))
	f.Add("averyveryveryverylongwordwithoutanyspacesatallforty", int64(-5), uint8(24))
	f.Add("tab\there\nnewline – café", int64(7), uint8(48))
	sc := scenarios(f)[0]
	f.Fuzz(func(t *testing.T, label string, points int64, width uint8) {
		w := receipt.MinWidth + int(width)%(receipt.MaxWidth-receipt.MinWidth+1)
		in := sc.in
		in.Reasons = append(append([]loyalty.Reason(nil), in.Reasons...),
			loyalty.Reason{Code: "campaign", Ref: "f", Label: label, Points: loyalty.Points(points)})
		b, err := receipt.Build(in)
		if err != nil {
			t.Fatal(err)
		}
		text := b.Text(w)
		for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if n := utf8.RuneCountInString(l); n > w {
				t.Fatalf("width %d: line of %d: %q", w, n, l)
			}
		}
		p, err := b.ESCPOS(receipt.PrintOptions{Width: w, CodePage: escpos.WPC1252})
		if err != nil {
			t.Fatal(err)
		}
		doc, err := escpos.Decode(p)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		for _, l := range doc.Lines {
			if n := utf8.RuneCountInString(l.Text) * l.Width; n > w {
				t.Fatalf("width %d: printed line of %d columns: %q", w, n, l.Text)
			}
		}
		if strings.ToValidUTF8(label, "") == label && escpos.WPC1252.Printable(label) == label {
			if got := doc.Text(w); got != text {
				t.Fatalf("width %d: printer prints\n%s\npreview shows\n%s", w, got, text)
			}
		}
	})
}
