package loyalty_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/loyalty"
)

// TestCardTokenNeverPrintsInTheClear defends invariant 7: every way a token
// can be formatted, logged or serialized shows only the redacted form.
func TestCardTokenNeverPrintsInTheClear(t *testing.T) {
	const uid = "04A1B2C3D4E5F6"
	tok, err := loyalty.NewCardToken(loyalty.CardNFC, "04:a1:b2:c3:d4:e5:f6")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.String(), "nfc:••••E5F6"; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("tap", "card", tok)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("tap", "card", tok)
	js, _ := json.Marshal(struct{ Card loyalty.CardToken }{tok})
	forms := map[string]string{
		"%v": fmt.Sprintf("%v", tok), "%+v": fmt.Sprintf("%+v", tok), "%#v": fmt.Sprintf("%#v", tok),
		"%s": fmt.Sprintf("%s card", tok), "slog": logged.String(), "json": string(js),
		"error": fmt.Errorf("card %v refused", tok).Error(),
	}
	for name, s := range forms {
		if strings.Contains(strings.ToUpper(s), uid[4:]) {
			t.Errorf("%s form leaks the UID: %s", name, s)
		}
		if !strings.Contains(s, "E5F6") {
			t.Errorf("%s form lost the redacted tail: %s", name, s)
		}
	}
	if tok.Reveal() != "nfc:"+uid {
		t.Errorf("Reveal: got %q", tok.Reveal())
	}
}

func TestCardTokenValidation(t *testing.T) {
	good := []string{"nfc:04A1B2C3", "nfc:04a1b2c3d4e5f6", "nfc:04A1B2C3D4E5F60708A9", "barcode:2012345678903", "app:tp1.abcdEFGH-123"}
	for _, s := range good {
		tok, err := loyalty.ParseCardToken(s)
		if err != nil {
			t.Errorf("ParseCardToken(%q): %v", s, err)
			continue
		}
		back, err := loyalty.ParseCardToken(tok.Reveal())
		if err != nil || back != tok {
			t.Errorf("%q does not round-trip through Reveal: %v", s, err)
		}
	}
	bad := []string{"", "nfc", "nfc:04A1B2", "nfc:04A1B2C3D4", "nfc:ZZA1B2C3", "barcode:12", "barcode:12 34 56", "barcode:1234\x00", "iris:1234", "app:" + strings.Repeat("x", 65)}
	for _, s := range bad {
		if _, err := loyalty.ParseCardToken(s); !errors.Is(err, loyalty.ErrInvalidCard) {
			t.Errorf("ParseCardToken(%q): got %v, want ErrInvalidCard", s, err)
		}
	}
}

// TestCardHashIsKeyed: the stored form depends on the program key and the
// card kind, so a leaked table cannot be matched against card numbers
// without the key.
func TestCardHashIsKeyed(t *testing.T) {
	a, _ := loyalty.ParseCardToken("barcode:2012345678903")
	b, _ := loyalty.ParseCardToken("app:2012345678903")
	k1, k2 := loyalty.CardKey("program-key-1"), loyalty.CardKey("program-key-2")
	if a.Hash(k1) == a.Hash(k2) {
		t.Error("the same card hashes alike under two keys")
	}
	if a.Hash(k1) == b.Hash(k1) {
		t.Error("a barcode and an app code with the same digits hash alike")
	}
	if again, _ := loyalty.ParseCardToken("barcode:2012345678903"); again.Hash(k1) != a.Hash(k1) {
		t.Error("hash is not deterministic")
	}
	h := a.Hash(k1)
	back, err := loyalty.ParseCardHash(h.String())
	if err != nil || back != h {
		t.Errorf("card hash does not round-trip: %v", err)
	}
	if !(loyalty.CardToken{}).Hash(k1).IsZero() {
		t.Error("the zero token must hash to the zero hash (no card)")
	}
}
