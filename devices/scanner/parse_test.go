package scanner_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/devices"
	"github.com/tillpoint/tillpoint/devices/scanner"
)

func TestParseDecodesAIMAndValidates(t *testing.T) {
	tests := []struct {
		name, in  string
		wantText  string
		wantSym   devices.Symbology
		wantAIM   string
		wantError error
	}{
		{"EAN-13 with AIM", "]E04006381333931", "4006381333931", devices.SymEAN13, "]E0", nil},
		{"EAN-13 inferred", "4006381333931", "4006381333931", devices.SymEAN13, "", nil},
		{"restricted circulation EAN-13", "]E02012345678903", "2012345678903", devices.SymEAN13, "]E0", nil},
		{"EAN-13 misread", "]E04006381333932", "", 0, "", scanner.ErrCheckDigit},
		{"EAN-13 inferred misread", "4006381333930", "", 0, "", scanner.ErrCheckDigit},
		{"EAN-13 too short", "]E0400638133393", "", 0, "", scanner.ErrCheckDigit},
		{"EAN-13 letters", "]E0400638133393X", "", 0, "", scanner.ErrMalformed},
		{"UPC-A as ]E0", "]E0036000291452", "036000291452", devices.SymEAN13, "]E0", nil},
		{"EAN-8", "]E496385074", "96385074", devices.SymEAN8, "]E4", nil},
		{"EAN-8 misread", "]E496385075", "", 0, "", scanner.ErrCheckDigit},
		{"UPC-A inferred", "036000291452", "036000291452", devices.SymUPCA, "", nil},
		{"GSRN in GS1-128", "]C18018123456789012345675", "8018123456789012345675", devices.SymGS1_128, "]C1", nil},
		{"GSRN misread", "]C18018123456789012345670", "", 0, "", scanner.ErrCheckDigit},
		{"GSRN short", "]C1801812345678901234567", "", 0, "", scanner.ErrMalformed},
		{"GS1-128 GTIN and serial", "]C10109506000134352" + "21ABC\x1d17260101", "0109506000134352" + "21ABC\x1d17260101", devices.SymGS1_128, "]C1", nil},
		{"GS1 unknown AI", "]C1" + "7777", "", 0, "", scanner.ErrMalformed},
		{"Code 128 own format", "]C0LOY-000123", "LOY-000123", devices.SymCode128, "]C0", nil},
		{"QR", "]Q1https://example.test/c/abc", "https://example.test/c/abc", devices.SymQR, "]Q1", nil},
		{"GS1 QR", "]Q3" + "8018123456789012345675", "8018123456789012345675", devices.SymGS1QR, "]Q3", nil},
		{"Data Matrix", "]d1HELLO", "HELLO", devices.SymDataMatrix, "]d1", nil},
		{"GS1 Data Matrix", "]d2" + "0109506000134352", "0109506000134352", devices.SymGS1DataMatrix, "]d2", nil},
		{"no AIM, free text", "ABC-123", "ABC-123", devices.SymUnknown, "", nil},
		{"bracket but not AIM", "]!x", "]!x", devices.SymUnknown, "", nil},
		{"empty", "", "", 0, "", scanner.ErrEmpty},
		{"AIM only", "]E0", "", 0, "", scanner.ErrEmpty},
		{"control byte", "12\x0034", "", 0, "", scanner.ErrMalformed},
		{"non-ASCII (wrong baud)", "\xf0\xf0\xf0", "", 0, "", scanner.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := scanner.Parse([]byte(tt.in))
			if tt.wantError != nil {
				if !errors.Is(err, tt.wantError) {
					t.Fatalf("Parse(%q) error = %v, want %v", tt.in, err, tt.wantError)
				}
				if tt.in != "" && len(tt.in) > 4 && strings.Contains(err.Error(), tt.in[3:]) {
					t.Errorf("error %q contains the scanned value", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if l.Text != tt.wantText || l.Symbology != tt.wantSym || l.AIM != tt.wantAIM {
				t.Errorf("Parse(%q) = %q %v %q, want %q %v %q", tt.in, l.Text, l.Symbology, l.AIM, tt.wantText, tt.wantSym, tt.wantAIM)
			}
		})
	}
}

func TestGSRNExtractsMembershipNumber(t *testing.T) {
	got, ok := scanner.GSRN("8018123456789012345675")
	if !ok || got != "123456789012345675" {
		t.Errorf("GSRN = %q, %v; want 123456789012345675, true", got, ok)
	}
	if _, ok := scanner.GSRN("0109506000134352"); ok {
		t.Errorf("GSRN of a GTIN-only string = ok, want not found")
	}
}

func TestRestrictedCirculation(t *testing.T) {
	for in, want := range map[string]bool{
		"2012345678903": true, "2900000001237": true, "4006381333931": false, "201234": false,
	} {
		if got := scanner.RestrictedCirculation(in); got != want {
			t.Errorf("RestrictedCirculation(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestCheckDigit(t *testing.T) {
	for in, want := range map[string]byte{"400638133393": '1', "9638507": '4', "12345678901234567": '5'} {
		got, err := scanner.CheckDigit(in)
		if err != nil || got != want {
			t.Errorf("CheckDigit(%s) = %c, %v; want %c", in, got, err, want)
		}
	}
	if _, err := scanner.CheckDigit("12a"); !errors.Is(err, scanner.ErrMalformed) {
		t.Errorf("CheckDigit(12a) error = %v, want ErrMalformed", err)
	}
}

func TestFramerSplitsBySuffix(t *testing.T) {
	tests := []struct {
		framing scanner.Framing
		in      string
		want    []string
	}{
		{scanner.FrameCR, "A\rB\r", []string{"A", "B"}},
		{scanner.FrameCR, "A\r\nB\r\n", []string{"A", "B"}},
		{scanner.FrameLF, "A\nB\n", []string{"A", "B"}},
		{scanner.FrameCRLF, "A\r\nB\r\n\r\n", []string{"A", "B"}},
		{scanner.FrameTab, "A\tB\rC\t", []string{"A", "B\rC"}},
		{scanner.FrameCR, "A\rpartial", []string{"A"}},
	}
	for _, tt := range tests {
		t.Run(tt.framing.String()+"/"+strings.NewReplacer("\r", `\r`, "\n", `\n`, "\t", `\t`).Replace(tt.in), func(t *testing.T) {
			f := scanner.Framer{Framing: tt.framing}
			var got []string
			// Byte by byte: framing must not depend on how reads split.
			for i := 0; i < len(tt.in); i++ {
				for _, fr := range f.Feed([]byte{tt.in[i]}, nil) {
					got = append(got, string(fr.Data))
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("frames = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFramerDropsOverlongFrameOnce(t *testing.T) {
	f := scanner.Framer{Framing: scanner.FrameCR}
	in := strings.Repeat("9", scanner.MaxScan+10) + "\rOK\r"
	frames := f.Feed([]byte(in), nil)
	if len(frames) != 2 || !frames[0].Overflow || string(frames[1].Data) != "OK" {
		t.Fatalf("frames = %d (first overflow=%v), want an overflow then OK", len(frames), len(frames) > 0 && frames[0].Overflow)
	}
}

func TestFramerGapFlush(t *testing.T) {
	f := scanner.Framer{Framing: scanner.FrameGap}
	if got := f.Feed([]byte("AB\rC"), nil); len(got) != 0 {
		t.Fatalf("gap framing split on bytes: %d frames", len(got))
	}
	got := f.Flush(nil)
	if len(got) != 1 || string(got[0].Data) != "AB\rC" {
		t.Fatalf("Flush = %v, want one frame AB\\rC", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"]E04006381333931", "4006381333931", "]C18018123456789012345675",
		"]C10109506000134352" + "21ABC\x1d17260101", "]Q1https://x", "]d2\x1d0109506000134352", "]E496385074", "", "]", "]E", "]C1", "]C180", "\x1d"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := scanner.Parse(data)
		if err != nil {
			if l != (scanner.Label{}) {
				t.Fatalf("Parse returned a label with an error")
			}
			if len(data) >= 6 && strings.Contains(err.Error(), string(data)) {
				t.Fatalf("error leaks the data: %v", err)
			}
			return
		}
		if l.AIM+l.Text != string(data) {
			t.Fatalf("AIM+Text = %q, want the input %q", l.AIM+l.Text, data)
		}
		if l.Text == "" {
			t.Fatalf("empty label without an error")
		}
		switch l.Symbology {
		case devices.SymEAN13, devices.SymEAN8, devices.SymUPCA:
			if _, err := scanner.Parse([]byte(l.Text[:len(l.Text)-1] + string('0'+(l.Text[len(l.Text)-1]-'0'+1)%10))); err == nil && l.AIM == "" {
				t.Fatalf("a changed check digit still parses")
			}
		}
	})
}
