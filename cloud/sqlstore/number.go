package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/tillpoint/tillpoint/cloud"
)

// qTakenNumbers reads which of some owner numbers are taken.
const qTakenNumbers = `SELECT no FROM owners WHERE no IN (?*)`

// ownerNumber is the first number tried for a new owner: 62 bits of the
// SHA-256 of its ID, plus one, negative for a held card (see heldLots).
// Owners numbered by migration 9 have small numbers. Two owners meet on a
// number about once in 2^62 / owners² new owners; numberOwners then
// passes over the taken one.
func ownerNumber(id cloud.Owner) int64 {
	h := sha256.Sum256([]byte(id))
	n := int64(binary.BigEndian.Uint64(h[:8])>>2) + 1
	if id.IsMember() {
		return n
	}
	return -n
}

// nextNumber is the number tried after n: away from zero, so that the
// sign, which tells held cards from members, stays.
func nextNumber(n int64) int64 {
	if n < 0 {
		return n - 1
	}
	return n + 1
}

// numberOwners gives a number that no other owner has to each owner that
// the book is about to insert, before their lots are written. On
// PostgreSQL a concurrent transaction that takes the same number makes one
// of the two inserts fail with a unique violation, and that one is retried.
func (b *book) numberOwners(ctx context.Context) error {
	var todo []*owner
	for _, o := range b.owners {
		if o.dirty && !o.exists && o.no == 0 {
			o.no = ownerNumber(o.id)
			todo = append(todo, o)
		}
	}
	slices.SortFunc(todo, func(a, c *owner) int { return strings.Compare(string(a.id), string(c.id)) })
	for len(todo) > 0 {
		nos := make([]any, 0, len(todo))
		for _, o := range todo {
			for b.byNo[o.no] != nil {
				o.no = nextNumber(o.no)
			}
			b.byNo[o.no] = o
			nos = append(nos, o.no)
		}
		taken := map[int64]bool{}
		err := chunks(nos, b.s.inMax(), func(nos []any) error {
			rows, err := b.tx.queryIn(ctx, qTakenNumbers, nos)
			if err != nil {
				return fmt.Errorf("read taken owner numbers: %w", err)
			}
			return scanAll(rows, func(rows *sql.Rows) error {
				var no int64
				if err := rows.Scan(&no); err != nil {
					return fmt.Errorf("read taken owner numbers: %w", err)
				}
				taken[no] = true
				return nil
			})
		})
		if err != nil {
			return err
		}
		again := todo[:0]
		for _, o := range todo {
			if taken[o.no] {
				delete(b.byNo, o.no)
				o.no = nextNumber(o.no)
				again = append(again, o)
			}
		}
		todo = again
	}
	return nil
}
