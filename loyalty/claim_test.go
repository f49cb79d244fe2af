package loyalty_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tillpoint/tillpoint/loyalty"
)

func claimKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func testClaim(t *testing.T, receipt string) loyalty.Claim {
	t.Helper()
	at := time.Date(2026, 11, 23, 14, 5, 0, 0, time.UTC)
	id, err := loyalty.NewOpID(at, bytes.NewReader(bytes.Repeat([]byte{0x5a}, 16)))
	if err != nil {
		t.Fatal(err)
	}
	op := loyalty.Op{ID: id, Kind: loyalty.OpEarn, Receipt: receipt, Points: 94, WallTime: at}
	return loyalty.NewClaim(&op)
}

func TestClaimRoundTripKeepsEveryField(t *testing.T) {
	key := claimKey(1)
	want := testClaim(t, "S012-T03-000123")
	token, err := loyalty.SignClaim(key, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := loyalty.VerifyClaim(key.Public().(ed25519.PublicKey), token, want.Expires.Add(-time.Minute))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got.Receipt != want.Receipt || got.Op != want.Op || got.Points != want.Points || !got.Expires.Equal(want.Expires) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if wantExp := time.Date(2026, 12, 23, 14, 5, 0, 0, time.UTC); !got.Expires.Equal(wantExp) {
		t.Fatalf("expires %s, want 30 days after the purchase, %s", got.Expires, wantExp)
	}
	parsed, err := loyalty.ParseClaim(token)
	if err != nil || parsed != got {
		t.Fatalf("ParseClaim = %+v, %v; want %+v", parsed, err, got)
	}
}

// The token must fit a version 6 to 8 QR code at error correction M and
// use only the QR alphanumeric set (capacities at M: v6 178, v8 255 characters).
func TestClaimTokenIsCompactAndAlphanumeric(t *testing.T) {
	key := claimKey(1)
	for _, tc := range []struct {
		receipt string
		max     int
	}{
		{"S012-T03-000123", 178},
		{strings.Repeat("R", loyalty.MaxFieldLen), 255},
	} {
		token, err := loyalty.SignClaim(key, testClaim(t, tc.receipt))
		if err != nil {
			t.Fatal(err)
		}
		if len(token) > tc.max {
			t.Errorf("receipt of %d bytes: token is %d characters, want at most %d", len(tc.receipt), len(token), tc.max)
		}
		for _, r := range token {
			if !strings.ContainsRune("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", r) {
				t.Fatalf("token %q has %q, outside the QR alphanumeric set", token, r)
			}
		}
	}
}

func TestVerifyClaimRejectsEveryAlteration(t *testing.T) {
	key := claimKey(1)
	c := testClaim(t, "S012-T03-000123")
	token, err := loyalty.SignClaim(key, c)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	now := c.Expires.Add(-time.Hour)
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for i := len(loyalty.ClaimPrefix); i < len(token); i++ {
		for _, r := range []byte{alphabet[0], alphabet[31]} {
			if token[i] == r {
				continue
			}
			altered := token[:i] + string(r) + token[i+1:]
			if got, err := loyalty.VerifyClaim(pub, altered, now); err == nil {
				t.Fatalf("altered character %d (%q): verified as %+v, want an error", i, altered, got)
			} else if !errors.Is(err, loyalty.ErrClaimSignature) && !errors.Is(err, loyalty.ErrInvalidClaim) {
				t.Fatalf("altered character %d: error %v, want ErrClaimSignature or ErrInvalidClaim", i, err)
			}
		}
	}
}

func TestVerifyClaimErrors(t *testing.T) {
	key := claimKey(1)
	c := testClaim(t, "S012-T03-000123")
	token, err := loyalty.SignClaim(key, c)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	other := claimKey(2).Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name  string
		key   ed25519.PublicKey
		token string
		now   time.Time
		want  error
	}{
		{"another terminal's key", other, token, c.Expires.Add(-time.Hour), loyalty.ErrClaimSignature},
		{"at expiry", pub, token, c.Expires, loyalty.ErrClaimExpired},
		{"a day late", pub, token, c.Expires.Add(24 * time.Hour), loyalty.ErrClaimExpired},
		{"no prefix", pub, strings.TrimPrefix(token, loyalty.ClaimPrefix), c.Expires, loyalty.ErrInvalidClaim},
		{"truncated", pub, token[:len(token)-8], c.Expires, loyalty.ErrInvalidClaim},
		{"trailing", pub, token + "AAAAAAAA", c.Expires, loyalty.ErrInvalidClaim},
		{"lower case", pub, strings.ToLower(token), c.Expires, loyalty.ErrInvalidClaim},
		{"empty", pub, "", c.Expires, loyalty.ErrInvalidClaim},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loyalty.VerifyClaim(tc.key, tc.token, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignClaimRefusesWhatCannotBeClaimed(t *testing.T) {
	key := claimKey(1)
	good := testClaim(t, "R1")
	for _, tc := range []struct {
		name string
		edit func(*loyalty.Claim)
	}{
		{"no points", func(c *loyalty.Claim) { c.Points = 0 }},
		{"negative points", func(c *loyalty.Claim) { c.Points = -5 }},
		{"no op", func(c *loyalty.Claim) { c.Op = loyalty.OpID{} }},
		{"receipt too long", func(c *loyalty.Claim) { c.Receipt = strings.Repeat("x", loyalty.MaxFieldLen+1) }},
		{"no expiry", func(c *loyalty.Claim) { c.Expires = time.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			if _, err := loyalty.SignClaim(key, c); !errors.Is(err, loyalty.ErrInvalidClaim) {
				t.Fatalf("got %v, want ErrInvalidClaim", err)
			}
		})
	}
	if _, err := loyalty.SignClaim(key[:10], good); err == nil {
		t.Fatal("short key: got no error, want one")
	}
}

func FuzzParseClaim(f *testing.F) {
	key := claimKey(1)
	c := loyalty.Claim{Receipt: "R-1", Op: loyalty.OpID{1, 2, 3}, Points: 10, Expires: time.Unix(1800000000, 0)}
	token, err := loyalty.SignClaim(key, c)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(token)
	f.Add(loyalty.ClaimPrefix)
	f.Add(token[:40])
	f.Fuzz(func(t *testing.T, s string) {
		got, err := loyalty.ParseClaim(s)
		if err != nil {
			if !errors.Is(err, loyalty.ErrInvalidClaim) {
				t.Fatalf("error %v does not wrap ErrInvalidClaim", err)
			}
			return
		}
		// Whatever parses must be a valid claim whose re-signed token parses
		// to the same claim (a token has one meaning).
		resigned, err := loyalty.SignClaim(key, got)
		if err != nil {
			t.Fatalf("parsed claim %+v cannot be signed: %v", got, err)
		}
		again, err := loyalty.ParseClaim(resigned)
		if err != nil || again != got {
			t.Fatalf("re-signed claim parses to %+v, %v; want %+v", again, err, got)
		}
	})
}
