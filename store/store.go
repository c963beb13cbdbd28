// Package store opens SQLite databases the way Relais needs them on both
// sides: one writer connection that takes its lock when a transaction
// begins, a separate pool of read-only connections, WAL, and durable
// commits.
//
// The split exists because go-sqlite3's default deferred transactions fail
// at once with "database is locked" when a read turns into a write while
// another writer is active, whatever busy_timeout says; funnelling writes
// through one immediate-locking connection makes writers queue instead.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"runtime"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// DB is a SQLite database opened as a writer and a reader pool.
type DB struct {
	Path string
	// W is the only connection that writes. Transactions on it begin
	// IMMEDIATE, so they wait for the lock rather than fail midway.
	W *sql.DB
	// R is a pool of read-only connections that see committed data.
	R *sql.DB
}

// Options tunes how a database is opened.
type Options struct {
	// Readers is the size of the read pool (default: number of CPUs, min 2).
	Readers int
	// SecureDelete overwrites freed pages, so that deleted personal data
	// does not linger in the file.
	SecureDelete bool
}

// Open opens (creating if needed) the database at path.
func Open(path string, opt Options) (*DB, error) {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "off")
	if opt.SecureDelete {
		q.Set("_secure_delete", "on")
	}
	wq := cloneValues(q)
	wq.Set("_txlock", "immediate")
	// The DSN must start with "file:" or go-sqlite3 ignores mode=ro.
	w, err := sql.Open("sqlite3", "file:"+escapePath(path)+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	rq := cloneValues(q)
	rq.Set("mode", "ro")
	r, err := sql.Open("sqlite3", "file:"+escapePath(path)+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	n := opt.Readers
	if n <= 0 {
		n = max(runtime.NumCPU(), 2)
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &DB{Path: path, W: w, R: r}, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	rerr := db.R.Close()
	if err := db.W.Close(); err != nil {
		return fmt.Errorf("close %s: %w", db.Path, err)
	}
	if rerr != nil {
		return fmt.Errorf("close %s readers: %w", db.Path, rerr)
	}
	return nil
}

// Write runs fn in one write transaction and commits it, or rolls it back
// when fn fails.
func (db *DB) Write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error that matters is fn's
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// IntegrityCheck runs SQLite's integrity check and returns its verdict.
func (db *DB) IntegrityCheck(ctx context.Context) (string, error) {
	var res string
	if err := db.W.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	return res, nil
}

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// escapePath keeps '?' and '#' in a file name from being read as the
// start of the DSN's query.
func escapePath(p string) string {
	u := url.URL{Path: p}
	return u.EscapedPath()
}
