package pgstore

import (
	"context"
	"database/sql"
	"fmt"
)

// LockKey takes, for the rest of tx, a lock on key shared by every server
// on the database: a second transaction locking the same key waits until
// tx ends. The push path locks the pushing device's id before it looks up
// the batch records, so a batch retried on another server while its first
// attempt is still running waits for it, then finds its answer, instead of
// being applied beside it (docs/DESIGN.md, "Several servers on one
// PostgreSQL"). PostgreSQL releases the lock when tx ends, or when the
// connection dies with its server.
func LockKey(ctx context.Context, tx *sql.Tx, key string) error {
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", key); err != nil {
		return fmt.Errorf("lock %s: %w", key, err)
	}
	return nil
}

// TryJob takes the lock of a job that one server at a time may run (the
// daily retention), without waiting: ok is false when another server
// holds it. The lock lives on a connection of its own until release is
// called, or until that connection dies, so a server killed during the
// job does not keep it.
func TryJob(ctx context.Context, db *sql.DB, job string) (release func(), ok bool, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("job %s: %w", job, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock(hashtextextended(?, 1))", job).Scan(&ok); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("job %s: %w", job, err)
	}
	if !ok {
		conn.Close()
		return func() {}, false, nil
	}
	return func() {
		// Unlock explicitly: the connection goes back to the pool, and a
		// session lock would stay with it.
		_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(hashtextextended(?, 1))", job)
		conn.Close()
	}, true, nil
}
