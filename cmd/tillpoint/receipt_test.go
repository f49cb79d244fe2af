package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/receipt/escpos"
)

const (
	checkoutJSON = "../../receipt/testdata/preview/checkout.json"
	cardlessJSON = "../../receipt/testdata/preview/cardless-op.json"
)

func TestReceiptPreviewText(t *testing.T) {
	code, out, errOut := run(t, "receipt", "preview", "--in", checkoutJSON, "--width", "32")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	for _, want := range []string{
		"Card                    ••••8903", // masked, never the number
		"Double points weekend x2      42", // reasons computed from the rules
		"Redeemed: Free coffee       -150",
		"756 points to Gold",
		"Balance as of 13:48, updates",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "201234567") {
		t.Fatalf("card number in the clear in\n%s", out)
	}
}

func TestReceiptPreviewESCPOSAndPNG(t *testing.T) {
	dir := t.TempDir()
	escposOut, pngOut := filepath.Join(dir, "b.bin"), filepath.Join(dir, "b.png")
	if code, _, errOut := run(t, "receipt", "preview", "--in", cardlessJSON, "--format", "escpos", "--codepage", "cp437", "--out", escposOut); code != 0 {
		t.Fatalf("escpos: exit %d, stderr %s", code, errOut)
	}
	raw, err := os.ReadFile(escposOut)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := escpos.Decode(raw)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(doc.Codes) != 1 || !strings.HasPrefix(doc.Codes[0].Data, "TPC1:") || len(doc.Cuts) != 1 {
		t.Fatalf("codes %+v, cuts %v; want one claim QR and one cut", doc.Codes, doc.Cuts)
	}
	if !strings.Contains(doc.Text(42), "Scan to claim 94 points") {
		t.Fatalf("printed:\n%s", doc.Text(42))
	}
	if code, _, errOut := run(t, "receipt", "preview", "--in", checkoutJSON, "--format", "png", "--lang", "es", "--out", pngOut); code != 0 {
		t.Fatalf("png: exit %d, stderr %s", code, errOut)
	}
	f, err := os.Open(pngOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("png: %v", err)
	}
	if got, want := img.Bounds().Dx(), 42*8+32; got != want {
		t.Fatalf("png %d pixels wide, want %d", got, want)
	}
}

func TestReceiptPreviewErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"ops": [{"kind": "earn"}], "colour": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"receipt"}, 2, "tillpoint receipt preview"},
		{[]string{"receipt", "preview"}, 2, "--in is required"},
		{[]string{"receipt", "preview", "--in", checkoutJSON, "--width", "10"}, 2, "use 32 for 58 mm"},
		{[]string{"receipt", "preview", "--in", checkoutJSON, "--format", "pdf"}, 2, "use text, png or escpos"},
		{[]string{"receipt", "preview", "--in", checkoutJSON, "--codepage", "cp1251"}, 2, "unknown code page"},
		{[]string{"receipt", "preview", "--in", checkoutJSON, "--lang", "fr"}, 2, "no message catalogue"},
		{[]string{"receipt", "preview", "--in", bad}, 1, `unknown field "colour"`},
		{[]string{"receipt", "preview", "--in", filepath.Join(dir, "missing.json")}, 1, "no such file"},
	} {
		code, _, errOut := run(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d saying %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
