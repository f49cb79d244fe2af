package receipt_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/tillpoint/tillpoint/loyalty"
	"github.com/tillpoint/tillpoint/receipt"
)

// danglingPunct finds what a message with an empty placeholder leaves
// behind: a space before closing punctuation ("Welcome to !") or after an
// opening one ("¡ Bienvenido").
var danglingPunct = regexp.MustCompile(`\s[!?.,:;)]|[¡¿(]\s|[¡¿][!?]`)

// A sign-up receipt welcomes the member by the program's name, and without
// a name it still reads as a sentence, in every language of the catalogue.
func TestEnrollWelcomeHasNoDanglingPunctuation(t *testing.T) {
	card, err := loyalty.NewCardToken(loyalty.CardBarcode, cardNumber)
	if err != nil {
		t.Fatal(err)
	}
	hash := card.Hash(loyalty.CardKey("k"))
	want := map[string][2]string{ // language: with a name, without one
		"en": {"Welcome to Club Verde!", "Welcome!"},
		"es": {"¡Bienvenido a Club Verde!", "¡Bienvenido!"},
	}
	for _, lang := range receipt.Languages() {
		for i, program := range []string{"Club Verde", ""} {
			name := lang + "/named"
			if program == "" {
				name = lang + "/unnamed"
			}
			t.Run(name, func(t *testing.T) {
				layout, err := receipt.DefaultLayout("", lang)
				if err != nil {
					t.Fatal(err)
				}
				rules := testRules()
				rules.Program = program
				op := loyalty.Op{ID: opID(t, 9), Kind: loyalty.OpEnroll, Card: hash, Member: "M-000777", Store: "S1", Terminal: "T1", WallTime: at}
				b := build(t, receipt.Input{Ops: []loyalty.Op{op}, Card: card, Rules: rules, Now: at, Location: madrid, Layout: layout,
					Member: &loyalty.Snapshot{Card: hash, Member: "M-000777", Tier: "Silver", AsOf: at}})
				text := b.Text(receipt.Width80mm)
				w, ok := want[lang]
				if !ok {
					t.Fatalf("language %q has no expected welcome in this test: add it", lang)
				}
				if !strings.Contains(text, w[i]) {
					t.Errorf("got\n%s\nwant a line %q", text, w[i])
				}
				for _, line := range strings.Split(text, "\n") {
					if m := danglingPunct.FindString(line); m != "" {
						t.Errorf("line %q has dangling punctuation %q", line, m)
					}
				}
			})
		}
	}
}
