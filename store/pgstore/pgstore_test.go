package pgstore

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2"},
		{"SELECT ?1 IS NULL OR x IN (?1) OR y = ?2", "SELECT $1 IS NULL OR x IN ($1) OR y = $2"},
		// SQLite's rule: a bare ? follows the largest number given so far.
		{"a = ?2 AND b = ? AND c = ?1", "a = $2 AND b = $3 AND c = $1"},
		{"a = ? AND b = ?5 AND c = ?", "a = $1 AND b = $5 AND c = $6"},
		{"SELECT 'où ?' , ? ", "SELECT 'où ?' , $1 "},
		{"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{`SELECT "col?" FROM t WHERE x = ?`, `SELECT "col?" FROM t WHERE x = $1`},
		{"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{"SELECT ? /* ? */ , ?", "SELECT $1 /* ? */ , $2"},
		{"SELECT 'unterminated ?", "SELECT 'unterminated ?"},
		{"SELECT ? -- ?", "SELECT $1 -- ?"},
	} {
		if got := Rebind(tc.in); got != tc.want {
			t.Errorf("Rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzRebind: whatever the text, Rebind ends, leaves no placeholder
// outside quotes, and changes nothing but placeholders.
func FuzzRebind(f *testing.F) {
	for _, s := range []string{"a = ? AND b = ?2", "'?' \"?\" -- ?\n ?", "/* ? */ ?9 ?", "?", "'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := Rebind(q)
		if !strings.Contains(q, "?") && out != q {
			t.Fatalf("Rebind changed %q into %q", q, out)
		}
		strip := func(s string) string {
			var b strings.Builder
			for i := 0; i < len(s); i++ {
				if s[i] == '?' || s[i] == '$' || (s[i] >= '0' && s[i] <= '9') {
					continue
				}
				b.WriteByte(s[i])
			}
			return b.String()
		}
		if strip(out) != strip(q) {
			t.Fatalf("Rebind(%q) = %q changed more than placeholders", q, out)
		}
	})
}

// TestPostgresSpeaksSQLitePlaceholders: the statements written for
// SQLite run unchanged on PostgreSQL, in and out of transactions and
// prepared.
func TestPostgresSpeaksSQLitePlaceholders(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, pgtest.DB(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Engine != store.Postgres {
		t.Fatalf("engine %q", db.Engine)
	}
	if _, err := db.W.ExecContext(ctx, "CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT, b BYTEA)"); err != nil {
		t.Fatal(err)
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO t (k, v, b) VALUES (?, ?, ?)", "un ?", 1, []byte{0, 1}); err != nil {
			return err
		}
		st, err := tx.PrepareContext(ctx, "INSERT INTO t (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = t.v + ?2")
		if err != nil {
			return err
		}
		defer st.Close()
		for range 3 {
			if _, err := st.ExecContext(ctx, "deux", 10); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var v int64
	var b []byte
	if err := db.R.QueryRowContext(ctx, "SELECT v, b FROM t WHERE k = ?", "un ?").Scan(&v, &b); err != nil || v != 1 || len(b) != 2 {
		t.Fatalf("read back: v=%d b=%v err=%v", v, b, err)
	}
	if err := db.R.QueryRowContext(ctx, "SELECT v FROM t WHERE k = ?1 AND ?1 <> '?'", "deux").Scan(&v); err != nil || v != 30 {
		t.Fatalf("upsert: v=%d err=%v", v, err)
	}
	_, err = db.W.ExecContext(ctx, "INSERT INTO t (k, v) VALUES (?, ?)", "deux", 0)
	if !IsUniqueViolation(err) {
		t.Fatalf("a duplicate key: %v, not seen as a unique violation", err)
	}
}

// TestSQLiteUniqueViolation: the same check on SQLite.
func TestSQLiteUniqueViolation(t *testing.T) {
	db, err := store.Open(t.TempDir()+"/u.db", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Engine != store.SQLite {
		t.Fatalf("engine %q", db.Engine)
	}
	if _, err := db.W.Exec("CREATE TABLE t (k TEXT PRIMARY KEY, u TEXT UNIQUE); INSERT INTO t VALUES ('a', 'x')"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"INSERT INTO t VALUES ('a', 'y')", "INSERT INTO t VALUES ('b', 'x')"} {
		if _, err := db.W.Exec(q); !IsUniqueViolation(err) {
			t.Errorf("%s: %v, not seen as a unique violation", q, err)
		}
	}
	if IsUniqueViolation(nil) {
		t.Error("nil is a unique violation")
	}
}
