package receipt_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/hil-tests/hil"

	"rsc.io/qr"

	"github.com/tillpoint/tillpoint/receipt"
)

func cardlessBlock(t *testing.T) receipt.Block {
	t.Helper()
	for _, s := range scenarios(t) {
		if s.name == "cardless" {
			return build(t, s.in)
		}
	}
	t.Fatal("no cardless scenario")
	return receipt.Block{}
}

// The claim token must fit a version 6 to 8 QR code at level M.
func TestClaimQRIsVersion6To8(t *testing.T) {
	b := cardlessBlock(t)
	c, err := qr.Encode(b.Claim, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	if v := (c.Size - 17) / 4; v < 6 || v > 8 {
		t.Fatalf("claim of %d characters needs QR version %d, want 6 to 8", len(b.Claim), v)
	}
}

// The PNG holds the QR code module for module, with its quiet zone, so a
// phone can scan it off the cashier screen.
func TestPNGDrawsTheQRCodeModuleForModule(t *testing.T) {
	b := cardlessBlock(t)
	for _, w := range widths {
		p, err := b.PNG(w)
		if err != nil {
			t.Fatal(err)
		}
		decoded, err := png.Decode(bytes.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		img, ok := decoded.(*image.Gray)
		if !ok {
			t.Fatalf("PNG decodes to %T, want *image.Gray", decoded)
		}
		if got, want := img.Bounds().Dx(), w*8+32; got != want {
			t.Errorf("width %d: image %d pixels wide, want %d", w, got, want)
		}
		code, err := qr.Encode(b.Claim, qr.M)
		if err != nil {
			t.Fatal(err)
		}
		x0, y0, ok := findFinder(img, 7*4)
		if !ok {
			t.Fatalf("width %d: no QR finder pattern in the image", w)
		}
		const module = 4
		for my := -4; my < code.Size+4; my++ {
			for mx := -4; mx < code.Size+4; mx++ {
				px := img.GrayAt(x0+mx*module+module/2, y0+my*module+module/2).Y
				if black := px < 0x80; black != code.Black(mx, my) {
					t.Fatalf("width %d: module (%d,%d) black=%v, want %v", w, mx, my, black, code.Black(mx, my))
				}
			}
		}
	}
}

// findFinder returns the top-left pixel of the QR code's top-left finder
// pattern: a black run of n pixels whose left end starts a black column of
// n pixels (a rule of dashes is a run but not a column).
func findFinder(img *image.Gray, n int) (int, int, bool) {
	r := img.Bounds()
	black := func(x, y int) bool { return img.GrayAt(x, y).Y < 0x80 }
	for y := r.Min.Y; y < r.Max.Y-n; y++ {
		run := 0
		for x := r.Min.X; x < r.Max.X; x++ {
			if !black(x, y) {
				run = 0
				continue
			}
			run++
			if run < n {
				continue
			}
			x0, column := x-run+1, true
			for dy := 0; dy < n && column; dy++ {
				column = black(x0, y+dy)
			}
			if column {
				return x0, y, true
			}
		}
	}
	return 0, 0, false
}

// With zbarimg installed (Debian zbar-tools), a real QR reader reads the
// claim token off the PNG. It skips without zbarimg (the module-for-module
// test above always runs) and fails instead under TILLPOINT_HIL=require,
// which CI sets after make deps installs zbar-tools.
func TestPNGQRScansWithZbar(t *testing.T) {
	zbar := hil.NeedCommand(t, "zbarimg")
	b := cardlessBlock(t)
	p, err := b.PNG(receipt.Width58mm)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "claim.png")
	if err := os.WriteFile(path, p, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, zbar, "-q", "--raw", path).Output()
	if err != nil {
		t.Fatalf("zbarimg: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != b.Claim {
		t.Fatalf("zbarimg read %q, want the claim token %q", got, b.Claim)
	}
}

// Each text line of the preview leaves ink, and bold lines more than the
// same text in regular weight: the font is drawn, not skipped.
func TestPNGDrawsEveryLine(t *testing.T) {
	b := build(t, scenarios(t)[0].in)
	img, err := b.Image(receipt.Width80mm)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.Text(receipt.Width80mm), "\n"), "\n")
	if min := 16 + len(lines)*18; img.Bounds().Dy() < min {
		t.Fatalf("image %d pixels high for %d lines, want at least %d", img.Bounds().Dy(), len(lines), min)
	}
	var inked int
	for y := 0; y < img.Bounds().Dy(); y++ {
		for x := 0; x < img.Bounds().Dx(); x++ {
			if img.GrayAt(x, y).Y < 0x80 {
				inked++
			}
		}
	}
	if inked < len(lines)*100 {
		t.Fatalf("%d dark pixels for %d lines of text: the glyphs are not drawn", inked, len(lines))
	}
}
