package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
)

// TestFilesArePrivate: the database and its -wal and -shm files are
// created readable by their owner only, and an existing file readable by
// others is made private when opened (they hold personal data).
func TestFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.db")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "new.db"), old} {
		db, err := Open(path, Options{SecureDelete: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.W.Exec("CREATE TABLE t (x); INSERT INTO t VALUES ('donnée')"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				t.Errorf("%s has mode %o, want no access for group or others", filepath.Base(p), perm)
			}
		}
		db.Close()
	}
}

// TestWriterSettings: the writer's cache, checkpoint and temporary
// storage settings hold on its first connection and on any connection
// database/sql opens later (after it dropped one it found broken), and
// SQLite's defaults hold when they are not set.
func TestWriterSettings(t *testing.T) {
	cases := []struct {
		name           string
		opt            Options
		wantCache      int64 // PRAGMA cache_size: pages, or KiB when negative
		wantCheckpoint int64
		wantTempStore  int64 // PRAGMA temp_store: 0 default (a file), 2 memory
	}{
		{"defaults", Options{}, -2000, 1000, 0},
		{"device", Options{CacheKiB: 65536, WALAutocheckpoint: 10000, TempInMemory: true}, -65536, 10000, 2},
		{"cache only", Options{CacheKiB: 4096}, -4096, 1000, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(filepath.Join(t.TempDir(), "s.db"), tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for round := range 2 {
				cache, temp := pragma(t, db.W, "cache_size"), pragma(t, db.W, "temp_store")
				if temp != tc.wantTempStore {
					t.Fatalf("connection %d: temp_store %d, want %d", round+1, temp, tc.wantTempStore)
				}
				checkpoint := pragma(t, db.W, "wal_autocheckpoint")
				if cache != tc.wantCache || checkpoint != tc.wantCheckpoint {
					t.Fatalf("connection %d: cache_size %d, wal_autocheckpoint %d; want %d, %d",
						round+1, cache, checkpoint, tc.wantCache, tc.wantCheckpoint)
				}
				// Closes the idle connection: the next query opens another.
				db.W.SetMaxIdleConns(0)
				db.W.SetMaxIdleConns(1)
			}
			if mode := pragma(t, db.W, "synchronous"); mode != 2 { // FULL: the settings above must not weaken durability
				t.Fatalf("synchronous = %d, want 2 (FULL)", mode)
			}
		})
	}
}

// TestReaderCaches: ReadCacheKiB is shared among the read pool's
// connections, and every reader has its share, the writer none of it.
func TestReaderCaches(t *testing.T) {
	cases := []struct {
		name       string
		opt        Options
		wantReader int64 // PRAGMA cache_size on a reader (KiB when negative)
	}{
		{"defaults", Options{Readers: 2}, -2000},
		{"server", Options{Readers: 2, ReadCacheKiB: 65536}, -32768},
		{"four readers", Options{Readers: 4, ReadCacheKiB: 65536}, -16384},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := Open(filepath.Join(t.TempDir(), "r.db"), tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// Every reader of the pool at once, so that each is asked.
			conns := make([]*sql.Conn, tc.opt.Readers)
			for i := range conns {
				if conns[i], err = db.R.Conn(ctx); err != nil {
					t.Fatal(err)
				}
				defer conns[i].Close()
				if cache := pragma(t, conns[i], "cache_size"); cache != tc.wantReader {
					t.Errorf("reader %d: cache_size %d, want %d", i+1, cache, tc.wantReader)
				}
			}
			if cache := pragma(t, db.W, "cache_size"); cache != -2000 {
				t.Errorf("writer: cache_size %d, want SQLite's default -2000", cache)
			}
		})
	}
}

// pragma reads an integer setting of the connection q gives.
func pragma(t *testing.T, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, name string) int64 {
	t.Helper()
	var v int64
	if err := q.QueryRowContext(context.Background(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

// TestStatementCache: a statement the writer keeps prepared runs as a
// fresh one would, after the schema changed under it (a device
// re-creates its triggers when a migration adds a column) and after it
// failed.
func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{StatementCache: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const insert = "INSERT INTO t (x) VALUES (?)"
	exec := func(q string, args ...any) error {
		_, err := db.W.ExecContext(ctx, q, args...)
		return err
	}
	if err := exec("CREATE TABLE t (x INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	for _, x := range []int{1, 2} {
		if err := exec(insert, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := exec(insert, 2); err == nil {
		t.Fatal("a duplicate key was inserted")
	}
	if err := exec("CREATE TRIGGER no_three BEFORE INSERT ON t WHEN NEW.x = 3 BEGIN SELECT RAISE(ABORT, 'pas de trois'); END"); err != nil {
		t.Fatal(err)
	}
	if err := exec(insert, 3); err == nil || err.Error() != "pas de trois" {
		t.Fatalf("insert after the trigger was created: %v, want the trigger's refusal", err)
	}
	if err := exec(insert, 4); err != nil {
		t.Fatal(err)
	}
	var n, sum int
	if err := db.W.QueryRowContext(ctx, "SELECT count(*), sum(x) FROM t").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != 3 || sum != 7 {
		t.Fatalf("%d rows adding up to %d, want 1, 2 and 4", n, sum)
	}
}
