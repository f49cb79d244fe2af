package nfc_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ebfe/scard"

	"github.com/tillpoint/tillpoint/devices/nfc"
)

type fakeCard struct {
	rsp   []byte
	err   error
	panic bool
	got   []byte
}

func (f *fakeCard) Transmit(cmd []byte) ([]byte, error) {
	f.got = cmd
	if f.panic {
		panic("index out of range")
	}
	return f.rsp, f.err
}

func TestReadUID(t *testing.T) {
	tests := []struct {
		name       string
		card       fakeCard
		wantUID    string
		wantRandom bool
		wantErr    error
	}{
		{"4-byte", fakeCard{rsp: []byte{0xDE, 0xAD, 0xBE, 0xEF, 0x90, 0x00}}, "deadbeef", false, nil},
		{"7-byte", fakeCard{rsp: []byte{0x04, 1, 2, 3, 4, 5, 6, 0x90, 0x00}}, "04010203040506", false, nil},
		{"10-byte", fakeCard{rsp: []byte{0x04, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x90, 0x00}}, "04010203040506070809", false, nil},
		{"random", fakeCard{rsp: []byte{0x08, 0x12, 0x34, 0x56, 0x90, 0x00}}, "08123456", true, nil},
		{"status word", fakeCard{rsp: []byte{0x6A, 0x81}}, "", false, nfc.ErrStatusWord},
		{"no status word", fakeCard{rsp: []byte{0x90}}, "", false, nfc.ErrStatusWord},
		{"5-byte uid", fakeCard{rsp: []byte{1, 2, 3, 4, 5, 0x90, 0x00}}, "", false, nfc.ErrBadUID},
		{"removed", fakeCard{err: scard.ErrRemovedCard}, "", false, nfc.ErrCardRemoved},
		{"transaction broke off", fakeCard{err: scard.ErrNotTransacted}, "", false, nfc.ErrCardRemoved},
		{"no answer", fakeCard{rsp: []byte{}}, "", false, nfc.ErrCardRemoved},
		{"library panics", fakeCard{panic: true}, "", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, random, err := nfc.ReadUID(&tt.card)
			if string(tt.card.got) != "\xFF\xCA\x00\x00\x00" {
				t.Errorf("sent % X, want FF CA 00 00 00", tt.card.got)
			}
			if tt.card.panic {
				if err == nil {
					t.Fatal("a panicking Transmit gave no error")
				}
				return
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.ToLower(hexOf(uid)); got != tt.wantUID || random != tt.wantRandom {
				t.Errorf("ReadUID = %s random=%v, want %s random=%v", got, random, tt.wantUID, tt.wantRandom)
			}
		})
	}
}

func hexOf(b []byte) string {
	const d = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(d[c>>4])
		s.WriteByte(d[c&15])
	}
	return s.String()
}
