package journal_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tillpoint/tillpoint/offline/journal"
)

// FuzzVerifyRejectsAlteredOp replaces the stored bytes of one op with
// arbitrary bytes (which the journal's read path decodes with
// loyalty.Op.UnmarshalBinary) and checks that Verify names exactly that op
// as broken, unless the bytes are the original ones, and never panics.
func FuzzVerifyRejectsAlteredOp(f *testing.F) {
	ctx := context.Background()
	dir := f.TempDir()
	orig := filepath.Join(dir, "orig.db")
	j, err := journal.Open(ctx, orig, testOptions())
	if err != nil {
		f.Fatal(err)
	}
	var bodies [][]byte
	for i := range 4 {
		op, err := j.Append(ctx, earnOp(i))
		if err != nil {
			f.Fatal(err)
		}
		bodies = append(bodies, op.AppendCanonical(nil))
	}
	if err := j.Close(); err != nil {
		f.Fatal(err)
	}
	image, err := os.ReadFile(orig)
	if err != nil {
		f.Fatal(err)
	}
	flipped := append([]byte(nil), bodies[1]...)
	flipped[len(flipped)/2] ^= 0x01
	f.Add(uint8(1), flipped)
	f.Add(uint8(2), bodies[2])
	f.Add(uint8(0), bodies[3])
	f.Add(uint8(3), []byte{})
	f.Add(uint8(3), []byte{1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})

	f.Fuzz(func(t *testing.T, row uint8, body []byte) {
		seq := int(row)%len(bodies) + 1
		path := filepath.Join(t.TempDir(), "journal.db")
		if err := os.WriteFile(path, image, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", fileURI(path)+"?_synchronous=OFF")
		if err != nil {
			t.Fatal(err)
		}
		if body == nil {
			body = []byte{}
		}
		_, err = db.Exec("UPDATE ops SET body = ? WHERE seq = ?", body, seq)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		j, err := journal.Open(ctx, path, journal.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		_, err = j.Verify(ctx)
		if string(body) == string(bodies[seq-1]) {
			if err != nil {
				t.Fatalf("Verify with the original bytes: %v", err)
			}
			return
		}
		var ce *journal.ChainError
		if !errors.As(err, &ce) || ce.Seq != uint64(seq) {
			t.Fatalf("Verify with seq %d altered to %x: got %v, want a *ChainError naming seq %d", seq, body, err, seq)
		}
	})
}
