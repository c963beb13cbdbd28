package demo

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/syncproto"
)

// bulk writes generated rows the way replica.Apply would write brand-new
// rows (each cell into _cells with its version and the next sequence
// number, each row materialised into its table), but with multi-row
// INSERTs: a million cells take seconds instead of a minute of one
// statement per cell. It is only correct for rows no replica holds yet,
// which is why Generate first checks that the data is not there already;
// a test compares its result with replica.Apply's, cell for cell, owner
// tags included (a running server's pulls read by them: untagged demo
// rows would reach no conseiller until the server restarted).
type bulk struct {
	ctx    context.Context
	tx     *sql.Tx
	schema *syncproto.Schema
	seq    int64
	owners map[string]string // owned table → owner column (scope rules)

	cellArgs []any
	rows     map[string]*rowBuf
	stmts    map[string]*sql.Stmt
}

type rowBuf struct {
	cols []string
	args []any
	n    int
}

const (
	cellsPerInsert = 128 // cellWidth parameters each: far below SQLite's limit
	cellWidth      = 8
	rowsPerInsert  = 64 // up to ~25 columns each
)

func newBulk(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema) (*bulk, error) {
	b := &bulk{ctx: ctx, tx: tx, schema: schema, rows: map[string]*rowBuf{}, stmts: map[string]*sql.Stmt{},
		owners: scope.NewRules(schema).OwnerColumns()}
	if err := tx.QueryRowContext(ctx, "SELECT seq FROM _replica WHERE id = 1").Scan(&b.seq); err != nil {
		return nil, fmt.Errorf("read sequence: %w", err)
	}
	return b, nil
}

// add queues one row: its cells (already in column order) and the row.
func (b *bulk) add(table, pk string, changes []syncproto.Change) error {
	rb := b.rows[table]
	if rb == nil {
		rb = &rowBuf{cols: b.schema.Tables[table].ColumnNames()}
		b.rows[table] = rb
	}
	vals := make(map[string]any, len(changes))
	for _, c := range changes {
		vals[c.Column] = c.Value
	}
	var owner any
	if col, owned := b.owners[table]; owned {
		if o, ok := vals[col].(string); ok {
			owner = o
		}
	}
	for _, c := range changes {
		b.seq++
		b.cellArgs = append(b.cellArgs, c.Table, c.PK, c.Column, c.Value, int64(c.Version.HLC), c.Version.Node, b.seq, owner)
	}
	rb.args = append(rb.args, pk)
	for _, col := range rb.cols {
		rb.args = append(rb.args, vals[col])
	}
	rb.n++
	if len(b.cellArgs) >= cellsPerInsert*cellWidth {
		if err := b.flushCells(false); err != nil {
			return err
		}
	}
	if rb.n >= rowsPerInsert {
		return b.flushRows(table, false)
	}
	return nil
}

func (b *bulk) stmt(key, query string) (*sql.Stmt, error) {
	if s, ok := b.stmts[key]; ok {
		return s, nil
	}
	s, err := b.tx.PrepareContext(b.ctx, query)
	if err != nil {
		return nil, err
	}
	b.stmts[key] = s
	return s, nil
}

func values(rows, cols int) string {
	one := "(" + strings.Repeat("?, ", cols-1) + "?)"
	return strings.Repeat(one+", ", rows-1) + one
}

func (b *bulk) flushCells(all bool) error {
	for len(b.cellArgs) >= cellsPerInsert*cellWidth || (all && len(b.cellArgs) > 0) {
		n := min(len(b.cellArgs)/cellWidth, cellsPerInsert)
		q := "INSERT INTO _cells (tbl, pk, col, val, hlc, node, seq, owner) VALUES " + values(n, cellWidth)
		s, err := b.stmt(fmt.Sprintf("cells/%d", n), q)
		if err != nil {
			return fmt.Errorf("write cells: %w", err)
		}
		if _, err := s.ExecContext(b.ctx, b.cellArgs[:n*cellWidth]...); err != nil {
			return fmt.Errorf("write cells: %w", err)
		}
		b.cellArgs = b.cellArgs[n*cellWidth:]
	}
	return nil
}

func (b *bulk) flushRows(table string, all bool) error {
	rb := b.rows[table]
	width := len(rb.cols) + 1
	for rb.n >= rowsPerInsert || (all && rb.n > 0) {
		n := min(rb.n, rowsPerInsert)
		q := `INSERT INTO "` + table + `" ("id", "` + strings.Join(rb.cols, `", "`) + `") VALUES ` + values(n, width)
		s, err := b.stmt(fmt.Sprintf("%s/%d", table, n), q)
		if err != nil {
			return fmt.Errorf("write %s rows: %w", table, err)
		}
		if _, err := s.ExecContext(b.ctx, rb.args[:n*width]...); err != nil {
			return fmt.Errorf("write %s rows: %w", table, err)
		}
		rb.args = rb.args[n*width:]
		rb.n -= n
	}
	return nil
}

// finish writes what is queued and saves the sequence.
func (b *bulk) finish() error {
	defer func() {
		for _, s := range b.stmts {
			s.Close()
		}
	}()
	if err := b.flushCells(true); err != nil {
		return err
	}
	for t := range b.rows {
		if err := b.flushRows(t, true); err != nil {
			return err
		}
	}
	if _, err := b.tx.ExecContext(b.ctx, "UPDATE _replica SET seq = ? WHERE id = 1", b.seq); err != nil {
		return fmt.Errorf("save sequence: %w", err)
	}
	return nil
}
