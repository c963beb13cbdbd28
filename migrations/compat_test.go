package migrations_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
)

// TestCompatFunctionsAnswerLikeSQLite: the same statements, with the
// same JSON, give the same rows on SQLite and on PostgreSQL with the
// compat set, for the ways the server's statements use them.
func TestCompatFunctionsAnswerLikeSQLite(t *testing.T) {
	ctx := context.Background()
	lite, err := store.Open(filepath.Join(t.TempDir(), "c.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pg, err := pgstore.Open(ctx, pgtest.DB(t), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if err := migrations.UpPostgres(ctx, pg.W, migrations.Compat); err != nil {
		t.Fatal(err)
	}
	for _, db := range []*store.DB{lite, pg} {
		if _, err := db.W.ExecContext(ctx, "CREATE TABLE t (id TEXT PRIMARY KEY, tags TEXT)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.W.ExecContext(ctx, `INSERT INTO t VALUES ('a', '["email","sante"]'), ('b', 'pas du json'), ('c', NULL), ('d', '{"x":1}')`); err != nil {
			t.Fatal(err)
		}
	}
	docs := []string{
		`["01928a10-0000-7000-8000-000000000001","01928a10-0000-7000-8000-000000000002"]`,
		`[]`,
		`["email", 3, 2.5, true, false, null, ["x"], {"k":"v"}, "é\"\\u00e9"]`,
		`{"tbl":"activite","pk":"p1"}`,
		`"seul"`,
		`42`,
		`null`,
	}
	queries := []struct {
		name string
		sql  string
		arg  func(doc string) []any
	}{
		{"json_each", "SELECT key, value, type FROM json_each(?)", func(d string) []any { return []any{d} }},
		{"json_each NULL", "SELECT key, value, type FROM json_each(?)", func(string) []any { return []any{nil} }},
		{"json_type", "SELECT json_type(?)", func(d string) []any { return []any{d} }},
		{"count distinct", "SELECT COUNT(*), COUNT(DISTINCT value) FROM json_each(?)", func(d string) []any { return []any{d} }},
		{"in list", "SELECT id FROM t WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id", func(string) []any { return []any{`["a","c","z"]`} }},
		// PostgreSQL cannot tell the type of a parameter tested only with
		// IS NULL: the portable spelling casts it.
		{"numbered in list", "SELECT id FROM t WHERE (CAST(?1 AS TEXT) IS NULL OR id IN (SELECT value FROM json_each(?1))) ORDER BY id", func(string) []any { return []any{`["b","d"]`} }},
		{"no list", "SELECT id FROM t WHERE (CAST(?1 AS TEXT) IS NULL OR id IN (SELECT value FROM json_each(?1))) ORDER BY id", func(string) []any { return []any{nil} }},
		{"column", `SELECT t.id, CASE WHEN json_valid(t.tags) THEN (SELECT COUNT(*) FROM json_each(t.tags)) ELSE -1 END,
			CASE WHEN json_valid(t.tags) AND json_type(t.tags) = 'array' THEN EXISTS (SELECT 1 FROM json_each(t.tags) WHERE value = 'sante') ELSE false END
			FROM t ORDER BY t.id`, func(string) []any { return nil }},
	}
	for _, q := range queries {
		for i, d := range docs {
			args := q.arg(d)
			want, err := rowsOf(ctx, lite.R, q.sql, args)
			if err != nil {
				t.Fatalf("%s on SQLite, doc %d: %v", q.name, i, err)
			}
			got, err := rowsOf(ctx, pg.R, q.sql, args)
			if err != nil {
				t.Fatalf("%s on PostgreSQL, doc %d: %v", q.name, i, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s, %s:\nSQLite     %q\nPostgreSQL %q", q.name, d, want, got)
			}
		}
	}
	// The scalar functions, on values as the statements pass them.
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"SELECT unhex(replace(?, '-', ''))", []any{"01928a10-0000-7000-8000-00000000000a"}},
		{"SELECT unhex(?)", []any{"zz"}},
		{"SELECT unhex(?)", []any{"abc"}},
		{"SELECT length(unhex(?))", []any{""}},
		{"SELECT MAX(?, 7), MIN(?, 7)", []any{int64(3), int64(3)}},
		{"SELECT MAX(?, 7), MIN(?, 7)", []any{int64(1) << 50, int64(1) << 50}},
		{"SELECT MAX(?, 7), MIN(7, ?)", []any{nil, nil}},
		{"SELECT MAX(id), MIN(id), COUNT(*) FROM t", nil}, // the aggregates still are
	} {
		want, err := rowsOf(ctx, lite.R, q.sql, q.args)
		if err != nil {
			t.Fatalf("%s on SQLite: %v", q.sql, err)
		}
		got, err := rowsOf(ctx, pg.R, q.sql, q.args)
		if err != nil {
			t.Fatalf("%s on PostgreSQL: %v", q.sql, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s %v:\nSQLite     %q\nPostgreSQL %q", q.sql, q.args, want, got)
		}
	}
	for _, d := range []string{`[1,2]`, `{"a":`, `pas du json`, ``} {
		var lv, pv bool
		if err := lite.R.QueryRowContext(ctx, "SELECT json_valid(?)", d).Scan(&lv); err != nil {
			t.Fatal(err)
		}
		if err := pg.R.QueryRowContext(ctx, "SELECT json_valid(?)", d).Scan(&pv); err != nil {
			t.Fatal(err)
		}
		if lv != pv {
			t.Errorf("json_valid(%q): SQLite %v, PostgreSQL %v", d, lv, pv)
		}
	}
	// Malformed JSON is an error on both, not an empty list.
	for _, db := range []*store.DB{lite, pg} {
		if _, err := rowsOf(ctx, db.R, "SELECT value FROM json_each(?)", []any{`["a",`}); err == nil {
			t.Errorf("%s: json_each of malformed JSON gave no error", db.Engine)
		}
	}
}

// rowsOf runs a query and writes each row as text, booleans as 0 and 1
// (SQLite has no booleans).
func rowsOf(ctx context.Context, db *sql.DB, q string, args []any) ([]string, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
				parts[i] = "NULL"
			case bool:
				parts[i] = map[bool]string{false: "0", true: "1"}[v]
			case []byte:
				parts[i] = string(v)
			default:
				parts[i] = fmt.Sprint(v)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return out, rows.Err()
}
