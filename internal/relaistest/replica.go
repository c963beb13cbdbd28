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

	"github.com/mattn/go-sqlite3"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/store/pgstore"
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
	if err := dumpCells(ctx, db, schema, &b, nil); err != nil {
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
	// The rows whose owner cell names owner, live or deleted.
	cells, err := Cells(ctx, db)
	if err != nil {
		return "", "", err
	}
	mine := map[syncproto.RowKey]bool{}
	for _, c := range cells {
		if c.Column == "mediateur_id" && Canon(c.Value) == Canon(owner) {
			mine[c.Row()] = true
		}
	}
	for _, name := range schema.TableNames() {
		if _, owned := schema.Tables[name].Columns["mediateur_id"]; !owned {
			continue
		}
		cols := append([]string{"id"}, schema.Tables[name].ColumnNames()...)
		q := fmt.Sprintf("SELECT %s FROM %s WHERE mediateur_id = ? ORDER BY id", quoteAll(cols), `"`+name+`"`)
		if err := dumpQuery(ctx, db, &b, name, q, owner); err != nil {
			return "", "", err
		}
	}
	if err := dumpCells(ctx, db, schema, &b, func(c syncproto.Change) bool { return mine[c.Row()] }); err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:]), b.String(), nil
}

// dumpCells writes every cell held (those keep accepts), with its
// version, as the _cells table of the per-cell layout listed them.
func dumpCells(ctx context.Context, db *sql.DB, schema *syncproto.Schema, b *strings.Builder, keep func(syncproto.Change) bool) error {
	return replica.EachCell(ctx, db, schema, func(c syncproto.Change, _ int64) error {
		if keep != nil && !keep(c) {
			return nil
		}
		b.WriteString("_cells")
		for _, v := range []any{c.Table, c.PK, c.Column, c.Value, int64(c.Version.HLC), c.Version.Node} {
			b.WriteByte('|')
			b.WriteString(Canon(v))
		}
		b.WriteByte('\n')
		return nil
	})
}

// LoadSchema reads the synced tables of a replica on either engine.
func LoadSchema(ctx context.Context, db *sql.DB) (*syncproto.Schema, error) {
	if _, lite := db.Driver().(*sqlite3.SQLiteDriver); lite {
		return replica.LoadSchema(ctx, db)
	}
	return pgstore.LoadSchema(ctx, db)
}

// Cell is a cell as a replica holds it, with its pull sequence (0 on a
// device) and its row's owner as recorded for pulls ("" for none).
type Cell struct {
	syncproto.Change
	Seq   int64
	Owner string
}

// CellsText lists every cell held, one per line: table, key, column,
// value, version, and as asked the sequence and the row's owner.
func CellsText(tb Fataler, db *sql.DB, withSeq, withOwner bool) string {
	tb.Helper()
	cells, err := Cells(context.Background(), db)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	var b strings.Builder
	for _, c := range cells {
		fmt.Fprintf(&b, "%s|%s|%s|%s|%d|%s", c.Table, c.PK, c.Column, Canon(c.Value), int64(c.Version.HLC), c.Version.Node)
		if withSeq {
			fmt.Fprintf(&b, "|%d", c.Seq)
		}
		if withOwner {
			fmt.Fprintf(&b, "|%s", c.Owner)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Cells lists every cell a replica holds, in table, key and column
// order: what tests look at instead of the layout's tables.
func Cells(ctx context.Context, db *sql.DB) ([]Cell, error) {
	schema, err := LoadSchema(ctx, db)
	if err != nil {
		return nil, err
	}
	owners := map[syncproto.RowKey]string{}
	rows, err := db.QueryContext(ctx, "SELECT t.name, r.pk, o.owner FROM _rows r JOIN _tables t ON t.id = r.tbl JOIN _owners o ON o.id = r.owner")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var table, owner string
		var pk any
		if err := rows.Scan(&table, &pk, &owner); err != nil {
			rows.Close()
			return nil, err
		}
		owners[syncproto.RowKey{Table: table, PK: replica.PKText(pk)}] = owner
	}
	rows.Close()
	var out []Cell
	err = replica.EachCell(ctx, db, schema, func(c syncproto.Change, seq int64) error {
		out = append(out, Cell{Change: c, Seq: seq, Owner: owners[c.Row()]})
		return nil
	})
	return out, err
}

// CountCells counts the cells a replica holds that keep accepts (all
// when nil). It fails the test on error.
func CountCells(t Fataler, db *sql.DB, keep func(c Cell) bool) int {
	t.Helper()
	cells, err := Cells(context.Background(), db)
	if err != nil {
		t.Fatalf("%v", err)
	}
	n := 0
	for _, c := range cells {
		if keep == nil || keep(c) {
			n++
		}
	}
	return n
}

// HeldCell returns one cell as a replica holds it; ok is false when it
// holds none.
func HeldCell(ctx context.Context, db *sql.DB, table, pk, col string) (replica.Cell, bool, error) {
	schema, err := LoadSchema(ctx, db)
	if err != nil {
		return replica.Cell{}, false, err
	}
	row, err := replica.HeldRow(ctx, db, schema, table, pk)
	if err != nil {
		return replica.Cell{}, false, err
	}
	c, ok := row[col]
	return c, ok, nil
}

func dumpQuery(ctx context.Context, db *sql.DB, b *strings.Builder, label, q string, args ...any) error {
	rows, err := db.QueryContext(ctx, q, args...)
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

// RowValue reads one column of a row as a replica keeps it, whether the
// row is live (its domain row) or deleted (the values kept beside its
// versions); nil when it holds none.
func RowValue(ctx context.Context, db *sql.DB, table, pk, col string) (any, error) {
	var v any
	err := db.QueryRowContext(ctx, "SELECT "+`"`+col+`"`+" FROM "+`"`+table+`"`+" WHERE id = ?", pk).Scan(&v)
	if err == nil {
		return v, nil
	}
	if err != sql.ErrNoRows {
		return nil, fmt.Errorf("read %s.%s of %s: %w", table, col, pk, err)
	}
	err = db.QueryRowContext(ctx, "SELECT extra ->> ? FROM _rows WHERE tbl = (SELECT id FROM _tables WHERE name = ?) AND pk = "+replica.PKSQL("?"),
		"$."+col, table, pk).Scan(&v)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s.%s of %s: %w", table, col, pk, err)
	}
	return v, nil
}

// Text is a value as text ("" for NULL), as ids are compared.
func Text(v any) string { return syncproto.ValueText(v) }
