package relaistest

import (
	"database/sql"
	"fmt"
	"strings"
)

// Fataler is what the helpers need of *testing.T, *testing.B and
// *rapid.T alike.
type Fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Rows runs a query and returns its column names and every row, with
// text that SQLite hands back as bytes turned into strings.
func Rows(t Fataler, db *sql.DB, query string, args ...any) ([]string, [][]any) {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b)
			}
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return cols, out
}

// Strings runs a query of one column and returns its values as text: the
// names of tables, columns or triggers a test goes through.
func Strings(t Fataler, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	_, rows := Rows(t, db, query, args...)
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprint(r[0])
	}
	return out
}

// Dump is a canonical text of what the queries return, one line per row,
// each value with its Go type so that 45, 45.0 and "45" differ: for tests
// that compare chosen parts of two databases exactly. Whole replicas are
// compared with DumpReplica.
func Dump(t Fataler, db *sql.DB, queries ...string) string {
	t.Helper()
	var b strings.Builder
	for _, q := range queries {
		_, rows := Rows(t, db, q)
		for _, row := range rows {
			for _, v := range row {
				fmt.Fprintf(&b, "%T:%v|", v, v)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}
