package pgstore

import (
	"context"
	"database/sql"
	"fmt"
)

// NextSeq reserves n sequence numbers for the write transaction tx and
// returns the first: the pull order of the cells tx changes. It is the
// PostgreSQL form of SQLite's single writer, and what keeps invariant 5
// (the pull order is the commit order) with several servers on one
// database; docs/DESIGN.md, "Pull order across servers", has the
// argument.
//
// The numbers come from the counter row of _replica, incremented in tx:
// the row stays locked until tx commits or rolls back, so the next
// transaction to reserve numbers waits until this one is visible to
// every new snapshot. A larger number therefore never becomes visible
// before a smaller one, and a pull that read up to some number can never
// see a smaller one appear later. (A PostgreSQL SEQUENCE would not do:
// nextval is not transactional, and a transaction that drew 10 can
// commit after one that drew 11 was already served; TestPullOrder shows
// it.) Numbers of a transaction that rolled back are never used: a gap,
// which cursors, being "greater than", step over.
//
// Reserve late: everything tx does between NextSeq and its commit holds
// up every other server's writes. With n == 0 it only takes the lock
// (and returns the number after the last one given out): a writer that
// must write something else first that every server shares (a name in
// the merge's dictionaries) takes it before, so that two servers never
// wait for each other's uncommitted rows in opposite orders.
func NextSeq(ctx context.Context, tx *sql.Tx, n int64) (int64, error) {
	if n < 0 {
		return 0, fmt.Errorf("reserve sequence numbers: %d is not a count", n)
	}
	var last int64
	if err := tx.QueryRowContext(ctx, "UPDATE _replica SET seq = seq + ? WHERE id = 1 RETURNING seq", n).Scan(&last); err != nil {
		return 0, fmt.Errorf("reserve sequence numbers: %w", err)
	}
	return last - n + 1, nil
}
