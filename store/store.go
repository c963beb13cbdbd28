// Package store opens the databases Relais keeps its state in: SQLite
// the way Relais needs it on both sides (one writer connection that takes
// its lock when a transaction begins, a separate pool of read-only
// connections, WAL, and durable commits), and, for a server that outgrew
// one machine, PostgreSQL (package pgstore), through the same *sql.DB API and
// the same SQL text.
//
// The split exists because go-sqlite3's default deferred transactions fail
// at once with "database is locked" when a read turns into a write while
// another writer is active, whatever busy_timeout says; funnelling writes
// through one immediate-locking connection makes writers queue instead.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"

	"github.com/mattn/go-sqlite3"
)

// Engine names the database engine behind a DB.
type Engine string

const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// DB is a SQLite database opened as a writer and a reader pool.
type DB struct {
	// Path is the SQLite file, or the PostgreSQL address without its
	// password.
	Path string
	// Engine is SQLite for Open, Postgres for pgstore.Open.
	Engine Engine
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
	// CacheKiB sizes the writer connection's page cache, in KiB (SQLite's
	// default, 2 MiB, when zero). A replica's cells are keyed by random
	// UUIDs, so a merge that writes many rows touches B-tree pages all
	// over the file: with a cache smaller than the working set, each
	// touched page is read again from the OS and its neighbours evicted.
	CacheKiB int
	// ReadCacheKiB sizes the page caches of the read pool, in KiB, all
	// its connections together (SQLite's default, 2 MiB each, when
	// zero). A pull reads version records and domain rows on random
	// UUID keys over the whole file; with a cache smaller than the pages
	// a long pull keeps coming back to, each is read again from the OS.
	// A cache grows only as pages are read, and is emptied by SQLite
	// whenever another connection has committed.
	ReadCacheKiB int
	// WALAutocheckpoint is the size, in pages, the WAL may reach before a
	// commit on the writer copies it back into the database (SQLite's
	// default, 1000 pages, when zero). A long run of large transactions
	// on random keys (a device's initial sync) dirties the same B-tree
	// pages commit after commit: checkpointing less often copies each of
	// them once for several commits instead of once per commit. The WAL
	// file keeps the largest size it reached.
	WALAutocheckpoint int
	// TempInMemory keeps the writer's temporary files in memory
	// (PRAGMA temp_store = MEMORY), the statement journal first: a
	// statement whose triggers write other tables keeps the original of
	// every page it changes, so that a RAISE can undo it. On a temporary
	// file, a device's capture triggers cost a dozen pwrite calls per
	// row written (measured with strace; 1 % of them in memory), about
	// a tenth of the write's CPU. The page images, which may hold
	// personal data, then never reach the disk either.
	TempInMemory bool
	// StatementCache is the number of prepared statements the writer
	// keeps, by their text, once closed (none when zero): preparing a
	// statement again costs nothing but a lookup. On a device, SQLite
	// compiles every trigger an INSERT or UPDATE might fire into the
	// statement (the capture, the checks of the domain's rules and of
	// the owner): half a millisecond for an INSERT into activite, where
	// running it costs a tenth of that; and an application that saves an
	// activity prepares the same INSERT again each time (database/sql's
	// Exec prepares, runs and closes).
	StatementCache int
	// Functions are Go functions registered as SQL functions on the
	// writer connection (go-sqlite3's RegisterFunc rules), as volatile
	// functions: SQLite calls them again on every row.
	Functions map[string]any
}

// Open opens (creating if needed) the database at path.
func Open(path string, opt Options) (*DB, error) {
	if err := private(path); err != nil {
		return nil, err
	}
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
	if opt.CacheKiB > 0 {
		// A negative cache_size is in KiB rather than pages.
		wq.Set("_cache_size", fmt.Sprint(-opt.CacheKiB))
	}
	if opt.StatementCache > 0 {
		wq.Set("_stmt_cache_size", fmt.Sprint(opt.StatementCache))
	}
	// The DSN must start with "file:" or go-sqlite3 ignores mode=ro.
	var setup []string
	if opt.TempInMemory {
		setup = append(setup, "PRAGMA temp_store = MEMORY")
	}
	if opt.WALAutocheckpoint > 0 {
		setup = append(setup, fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", opt.WALAutocheckpoint))
	}
	w := sql.OpenDB(&connector{dsn: "file:" + escapePath(path) + "?" + wq.Encode(), setup: setup, funcs: opt.Functions})
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	n := opt.Readers
	if n <= 0 {
		n = max(runtime.NumCPU(), 2)
	}
	rq := cloneValues(q)
	rq.Set("mode", "ro")
	if opt.ReadCacheKiB > 0 {
		rq.Set("_cache_size", fmt.Sprint(-max(opt.ReadCacheKiB/n, 1)))
	}
	r, err := sql.Open("sqlite3", "file:"+escapePath(path)+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &DB{Path: path, Engine: SQLite, W: w, R: r}, nil
}

// connector opens go-sqlite3 connections and runs setup on each, for the
// settings its DSN cannot carry: database/sql may replace a connection it
// found broken, and the new one must be set up like the first.
type connector struct {
	dsn   string
	setup []string
	funcs map[string]any
}

func (c *connector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.Driver().Open(c.dsn)
	if err != nil {
		return nil, err
	}
	for name, fn := range c.funcs {
		if err := conn.(*sqlite3.SQLiteConn).RegisterFunc(name, fn, false); err != nil {
			conn.Close()
			return nil, fmt.Errorf("register SQL function %s: %w", name, err)
		}
	}
	for _, q := range c.setup {
		if _, err := conn.(*sqlite3.SQLiteConn).Exec(q, nil); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	return conn, nil
}

func (c *connector) Driver() driver.Driver { return &sqlite3.SQLiteDriver{} }

// Close closes both pools.
func (db *DB) Close() error {
	if db.R == db.W { // PostgreSQL: one pool
		if err := db.W.Close(); err != nil {
			return fmt.Errorf("close %s: %w", db.Path, err)
		}
		return nil
	}
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

// private creates the database file readable by its owner only, before
// SQLite does (it would use 0644, and gives its -wal and -shm files the
// main file's mode), and takes group and other permissions away from an
// existing one: the files hold personal data.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("check the permissions of %s: %w", p, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return fmt.Errorf("make %s private: %w", p, err)
			}
		}
	}
	return nil
}
