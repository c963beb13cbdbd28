package relaistest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/relais-numerique/relais/syncproto"
)

// DumpReplica is what "two replicas hold the same data" means in every
// test and in the fault simulation: a canonical text of every synced
// table, row by row in id order, then of every cell with its version
// (not its sequence number, which only the server has), and its hash.
// Values are compared by Canon, so a value read from SQLite and the same
// value decoded from the wire agree.
func DumpReplica(ctx context.Context, db *sql.DB, schema *syncproto.Schema) (string, string, error) {
	var b strings.Builder
	for _, name := range schema.TableNames() {
		cols := append([]string{"id"}, schema.Tables[name].ColumnNames()...)
		q := fmt.Sprintf("SELECT %s FROM %s ORDER BY id", quoteAll(cols), `"`+name+`"`)
		if err := dumpQuery(ctx, db, &b, name, q); err != nil {
			return "", "", err
		}
	}
	if err := dumpQuery(ctx, db, &b, "_cells", "SELECT tbl, pk, col, val, hlc, node FROM _cells ORDER BY tbl, pk, col"); err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:]), b.String(), nil
}

// DumpOwned is DumpReplica restricted to the rows whose owner cell
// (mediateur_id) names owner: what that person's replica holds when she
// works in no structure and coordinates nobody.
func DumpOwned(ctx context.Context, db *sql.DB, schema *syncproto.Schema, owner string) (string, string, error) {
	var b strings.Builder
	mine := "SELECT pk FROM _cells WHERE tbl = %s AND col = 'mediateur_id' AND val = '" + owner + "'"
	for _, name := range schema.TableNames() {
		if _, owned := schema.Tables[name].Columns["mediateur_id"]; !owned {
			continue
		}
		cols := append([]string{"id"}, schema.Tables[name].ColumnNames()...)
		q := fmt.Sprintf("SELECT %s FROM %s WHERE id IN (%s) ORDER BY id", quoteAll(cols), `"`+name+`"`, fmt.Sprintf(mine, "'"+name+"'"))
		if err := dumpQuery(ctx, db, &b, name, q); err != nil {
			return "", "", err
		}
	}
	q := "SELECT tbl, pk, col, val, hlc, node FROM _cells c WHERE pk IN (" + fmt.Sprintf(mine, "c.tbl") + ") ORDER BY tbl, pk, col"
	if err := dumpQuery(ctx, db, &b, "_cells", q); err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:]), b.String(), nil
}

func dumpQuery(ctx context.Context, db *sql.DB, b *strings.Builder, label, q string) error {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("dump %s: %w", label, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return fmt.Errorf("dump %s: %w", label, err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("dump %s: %w", label, err)
		}
		b.WriteString(label)
		for _, v := range vals {
			b.WriteByte('|')
			b.WriteString(Canon(v))
		}
		b.WriteByte('\n')
	}
	return rows.Err()
}

func quoteAll(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = `"` + c + `"`
	}
	return strings.Join(q, ", ")
}

// Canon is a value's canonical text, the same whether it was read from
// SQLite (int64, float64, string, []byte) or decoded from the wire
// (json.Number, string).
func Canon(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case []byte:
		return strconv.Quote(string(x))
	case string:
		return strconv.Quote(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return strconv.FormatInt(i, 10)
		}
		if f, err := x.Float64(); err == nil {
			return Canon(f)
		}
		return x.String()
	}
	return fmt.Sprintf("%T:%v", v, v)
}

// FirstDiff shows the first line where two DumpReplica texts differ.
func FirstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var a, b string
		if i < len(wl) {
			a = wl[i]
		}
		if i < len(gl) {
			b = gl[i]
		}
		if a != b {
			return fmt.Sprintf("line %d: server %q, device %q", i+1, a, b)
		}
	}
	return "same text, different hash"
}
