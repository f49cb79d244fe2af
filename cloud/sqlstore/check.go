package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/tillpoint/tillpoint/cloud"
	"github.com/tillpoint/tillpoint/loyalty"
)

// maxProblems bounds the problems a check lists.
const maxProblems = 20

// Check implements cloud.Ledger: it recomputes every balance from the
// postings and every lot from its uses, in one consistent read, and
// compares them with what the ledger holds.
func (s *Store) Check(ctx context.Context) (cloud.CheckReport, error) {
	var rep cloud.CheckReport
	tx, err := s.readTx(ctx)
	if err != nil {
		return rep, err
	}
	defer tx.end(ctx)
	problem := func(format string, args ...any) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...))
		}
	}
	count := func(query string) (int, error) {
		var n int
		err := tx.QueryRowContext(ctx, query).Scan(&n)
		return n, err
	}

	// 1. Every transaction balances.
	if rep.Transactions, err = count(`SELECT COUNT(*) FROM (SELECT txid, part FROM postings GROUP BY txid, part) t`); err != nil {
		return rep, fmt.Errorf("check transactions: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT txid, part, CAST(SUM(amount) AS BIGINT) FROM postings GROUP BY txid, part HAVING SUM(amount) <> 0`)
	if err != nil {
		return rep, fmt.Errorf("check transactions: %w", err)
	}
	for rows.Next() {
		var id []byte
		var part, sum int64
		if err := rows.Scan(&id, &part, &sum); err != nil {
			rows.Close()
			return rep, fmt.Errorf("check transactions: %w", err)
		}
		problem("transaction %x/%d: postings sum to %d, not 0", id, part, sum)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("check transactions: %w", err)
	}

	// 2. Every account is the sum of its postings; collect the totals.
	replayed := map[string]int64{}
	rows, err = tx.QueryContext(ctx, `SELECT account, CAST(SUM(amount) AS BIGINT) FROM postings GROUP BY account`)
	if err != nil {
		return rep, fmt.Errorf("replay postings: %w", err)
	}
	for rows.Next() {
		var a string
		var sum int64
		if err := rows.Scan(&a, &sum); err != nil {
			rows.Close()
			return rep, fmt.Errorf("replay postings: %w", err)
		}
		replayed[a] = sum
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("replay postings: %w", err)
	}
	avail := map[cloud.Owner]int64{}
	var total int64
	// The program's accounts are rows of accounts; an owner's two are
	// columns of its owners row.
	rows, err = tx.QueryContext(ctx, `SELECT id, balance FROM accounts
		UNION ALL SELECT 'avail|' || id, avail FROM owners
		UNION ALL SELECT 'debt|' || id, debt FROM owners`)
	if err != nil {
		return rep, fmt.Errorf("read accounts: %w", err)
	}
	for rows.Next() {
		var a string
		var bal int64
		if err := rows.Scan(&a, &bal); err != nil {
			rows.Close()
			return rep, fmt.Errorf("read accounts: %w", err)
		}
		rep.Accounts++
		total += bal
		if want, ok := replayed[a]; bal != want {
			problem("account %s: balance %d, postings sum to %d", a, bal, want)
		} else if ok {
			delete(replayed, a)
		}
		name, o, _ := strings.Cut(a, "|")
		switch name {
		case cloud.AccountAvail:
			avail[cloud.Owner(o)] = bal
			rep.Liability += loyalty.Points(bal)
			if bal < 0 {
				problem("account %s: negative available balance %d", a, bal)
			}
		case cloud.AccountDebt:
			rep.Debt -= loyalty.Points(bal)
			if bal > 0 {
				problem("account %s: debt account in credit (%d)", a, bal)
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("read accounts: %w", err)
	}
	for a, sum := range replayed {
		if sum != 0 {
			problem("account %s: postings sum to %d but the account has no balance row", a, sum)
		}
	}
	if total != 0 {
		problem("all account balances sum to %d, not 0", total)
	}

	// 3. Invariant 3: the liability is earned - redeemed - expired ±
	// adjustments - what links settled against debt.
	rows, err = tx.QueryContext(ctx, s.q(`SELECT kind, CAST(SUM(amount) AS BIGINT) FROM postings WHERE account LIKE ? GROUP BY kind`), cloud.AccountAvail+"|%")
	if err != nil {
		return rep, fmt.Errorf("sum postings by kind: %w", err)
	}
	for rows.Next() {
		var kind, sum int64
		if err := rows.Scan(&kind, &sum); err != nil {
			rows.Close()
			return rep, fmt.Errorf("sum postings by kind: %w", err)
		}
		switch kind {
		case kindEarn, kindClaim:
			rep.Earned += loyalty.Points(sum)
		case kindRedeem:
			rep.Redeemed -= loyalty.Points(sum)
		case kindExpire:
			rep.Expired -= loyalty.Points(sum)
		case kindLink:
			// A link moves points between owners, which nets to zero,
			// and settles the points and debt it brings together.
			rep.Settled -= loyalty.Points(sum)
		default: // adjust, reeval, reverse
			rep.Adjusted += loyalty.Points(sum)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("sum postings by kind: %w", err)
	}
	if got := rep.Earned - rep.Redeemed - rep.Expired + rep.Adjusted - rep.Settled; got != rep.Liability {
		problem("earned %d - redeemed %d - expired %d + adjusted %d - settled %d = %d, but the liability is %d",
			rep.Earned, rep.Redeemed, rep.Expired, rep.Adjusted, rep.Settled, got, rep.Liability)
	}

	// 4. Every lot is its amount minus its uses, and an owner's open lots
	// sum to the available balance.
	if rep.Owners, err = count(`SELECT COUNT(*) FROM owners`); err != nil {
		return rep, fmt.Errorf("count owners: %w", err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT l.id, COALESCE(o.id, ''), l.amount, l.remaining, COALESCE(CAST(u.used AS BIGINT), 0)
		FROM lots l LEFT JOIN owners o ON o.no = l.owner_no
		LEFT JOIN (SELECT lot, SUM(amount) AS used FROM lot_uses GROUP BY lot) u ON u.lot = l.id`)
	if err != nil {
		return rep, fmt.Errorf("replay lots: %w", err)
	}
	lots := map[cloud.Owner]int64{}
	for rows.Next() {
		var id []byte
		var o string
		var amount, remaining, used int64
		if err := rows.Scan(&id, &o, &amount, &remaining, &used); err != nil {
			rows.Close()
			return rep, fmt.Errorf("replay lots: %w", err)
		}
		rep.Lots++
		if o == "" {
			problem("lot %x names an owner number that no owner has", id)
		}
		if remaining != amount-used || remaining < 0 || remaining > amount {
			problem("lot %x of %s: amount %d, used %d, but %d remaining", id, o, amount, used, remaining)
		}
		lots[cloud.Owner(o)] += remaining
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("replay lots: %w", err)
	}
	for o, bal := range avail {
		if lots[o] != bal {
			problem("owner %s: lots sum to %d, available balance is %d", o, lots[o], bal)
		}
		delete(lots, o)
	}
	for o, sum := range lots {
		if sum != 0 {
			problem("owner %s: lots hold %d points but there is no available balance", o, sum)
		}
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%w: %d problems, first: %s; stop ingesting and investigate", cloud.ErrCheckFailed, len(rep.Problems), rep.Problems[0])
	}
	return rep, nil
}
