package replica

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relais-numerique/relais/syncproto"
)

// Options says what kind of replica is being written.
type Options struct {
	// AssignSeq gives every cell that changes the next pull sequence
	// number (the server does; devices do not serve pulls).
	AssignSeq bool
	// RecordConflicts writes concurrent writes that lost to _conflicts.
	// Only the server does: it sees every write, so its log is complete
	// and each conflict is recorded once.
	RecordConflicts bool
	// Now stamps recorded conflicts; time.Now when nil.
	Now func() time.Time
	// Prepared, when set, holds statements already prepared on the
	// writer connection, which Apply uses instead of preparing its own.
	Prepared *Prepared
	// Owners names, for each table whose rows belong to someone, the
	// column holding the owner. Every cell written to such a row is
	// tagged with the row's owner (the owner column of _cells), so that a
	// pull can read one person's cells by index (see ReadOwned). The
	// server sets it; devices, which serve no pulls, leave it nil.
	Owners map[string]string
}

// Result says what applying a batch did.
type Result struct {
	Won        int // cells whose value changed
	Lost       int // cells older than the version held
	Duplicates int // cells already held at exactly this version
	// KeptAside counts cells of tables or columns this replica's schema
	// does not have yet: their versions and values are kept in _cells and
	// materialised when a migration adds the column.
	KeptAside int
	Conflicts []syncproto.ConflictReport
	// Seq is the last sequence number given out, when AssignSeq is set.
	Seq int64
}

// Apply merges changes into the replica inside tx. Changes must already
// have passed Schema.Check where the caller requires known columns (the
// server does; a device keeps unknown columns aside). Apply is
// idempotent: applying the same changes again changes nothing.
func Apply(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema, changes []syncproto.Change, opt Options) (Result, error) {
	var res Result
	if len(changes) == 0 {
		return res, nil
	}
	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	// Statements below run without the caller's cancellation: go-sqlite3
	// starts a goroutine per statement to watch a cancellable context,
	// which costs more than a cell's insert. The transaction still obeys
	// ctx, and one Apply is bounded by the size of a batch or page.
	ctx = context.WithoutCancel(ctx)
	st := newStmts(tx)
	st.pre = opt.Prepared
	defer st.close()
	// A replica that neither numbers cells for pulls nor tags their owner
	// (a device) writes them without those two columns: every argument
	// bound costs a call through cgo, and they would all be NULL.
	cells := &cellWriter{st: st, untagged: !opt.AssignSeq && len(opt.Owners) == 0}

	var seq int64
	if opt.AssignSeq {
		if err := tx.QueryRowContext(ctx, "SELECT seq FROM _replica WHERE id = 1").Scan(&seq); err != nil {
			return res, fmt.Errorf("merge: read sequence: %w", err)
		}
	}

	// Rows touched, in first-touched order, with the columns that won.
	var order []syncproto.RowKey
	dirty := map[syncproto.RowKey]map[string]any{}
	// The cells held for each row touched, read up front (a few queries
	// per batch rather than one per cell) and kept current as changes win.
	heldRows, err := loadRows(ctx, st, changes)
	if err != nil {
		return res, err
	}
	// Rows that had no cell at all before this batch: they have no domain
	// row either, so each is written whole with one statement per table.
	fresh := map[syncproto.RowKey]bool{}
	for k, cells := range heldRows {
		if len(cells) == 0 {
			fresh[k] = true
		}
	}
	owners, retag := rowOwners(changes, heldRows, fresh, opt.Owners)

	for i := range changes {
		c := &changes[i]
		val := plain(c.Value)
		k := c.Row()
		held := heldRows[k]
		h := held[c.Column] // the zero heldCell when the cell is new
		heldVal, heldVer := h.val, h.ver

		d := syncproto.Decide(heldVer, c.Version, c.Prev)
		concurrent := d.Concurrent
		switch d.Outcome {
		case syncproto.Duplicate:
			res.Duplicates++
			continue
		case syncproto.Lost:
			res.Lost++
			if concurrent && opt.RecordConflicts {
				if err := recordConflict(ctx, tx, c.Cell(), heldVal, heldVer, val, c.Version, now()); err != nil {
					return res, err
				}
				res.Conflicts = append(res.Conflicts, syncproto.ConflictReport{Cell: c.Cell(), Winner: heldVer, Loser: c.Version})
			}
			continue
		}

		var seqArg any
		if opt.AssignSeq {
			seq++
			seqArg = seq
		}
		if err := cells.add(ctx, c, val, seqArg, owners[k]); err != nil {
			return res, err
		}
		held[c.Column] = heldCell{val: val, ver: c.Version}
		res.Won++
		if concurrent && opt.RecordConflicts {
			if err := recordConflict(ctx, tx, c.Cell(), val, c.Version, heldVal, heldVer, now()); err != nil {
				return res, err
			}
			res.Conflicts = append(res.Conflicts, syncproto.ConflictReport{Cell: c.Cell(), Winner: c.Version, Loser: heldVer})
		}
		if _, known := schema.ColumnType(c.Table, c.Column); !known {
			res.KeptAside++
			continue
		}
		cols, seen := dirty[k]
		if !seen {
			cols = map[string]any{}
			dirty[k] = cols
			order = append(order, k)
		}
		cols[c.Column] = val
	}
	// What follows reads or tags cells in _cells: every winning cell must
	// be written first.
	if err := cells.flush(ctx); err != nil {
		return res, err
	}

	for _, k := range retag {
		if err := tagRow(ctx, st, k, owners[k]); err != nil {
			return res, err
		}
	}
	newRows := &rowWriter{st: st}
	for _, k := range order {
		tomb := heldRows[k][syncproto.DeletedColumn]
		won := dirty[k]
		if fresh[k] {
			won = wholeRow(schema.Tables[k.Table], won)
			// A new row, neither deleted nor re-created, is written
			// with the table's other new rows, a chunk at a time. Each
			// domain row is written once per Apply and nothing in
			// between reads it, so the order rows are written in does
			// not matter.
			if _, recreated := won[syncproto.DeletedColumn]; !recreated && !isOne(tomb.val) {
				if err := newRows.add(ctx, schema.Tables[k.Table], k.PK, won); err != nil {
					return res, err
				}
				continue
			}
		}
		if err := materialise(ctx, tx, st, schema, k, won, isOne(tomb.val)); err != nil {
			return res, err
		}
	}
	if err := newRows.flushAll(ctx); err != nil {
		return res, err
	}
	if opt.AssignSeq {
		if _, err := tx.ExecContext(ctx, "UPDATE _replica SET seq = ? WHERE id = 1", seq); err != nil {
			return res, fmt.Errorf("merge: save sequence: %w", err)
		}
		res.Seq = seq
	}
	return res, nil
}

// materialise brings the domain row in line with its cells after some of
// them won: deleted rows disappear, re-created rows are rebuilt from all
// their cells, other rows get the winning columns. deleted is the row's
// tombstone as held after the merge.
func materialise(ctx context.Context, tx *sql.Tx, st *stmts, schema *syncproto.Schema, k syncproto.RowKey, won map[string]any, deleted bool) error {
	t := schema.Tables[k.Table]
	if deleted {
		del, err := st.prepare(ctx, deleteSQL(t))
		if err == nil {
			_, err = del.ExecContext(ctx, k.PK)
		}
		if err != nil {
			return fmt.Errorf("merge: delete %s %s: %w", k.Table, k.PK, err)
		}
		return nil
	}
	cols := won
	if _, recreated := won[syncproto.DeletedColumn]; recreated {
		all, err := RowCells(ctx, tx, schema, k.Table, k.PK)
		if err != nil {
			return err
		}
		cols = all
	}
	return upsert(ctx, st, t, k.PK, cols)
}

// rowOwners works out the owner each touched row of an owned table will
// have once the batch is merged: the owner cell as held, or the newest
// one the batch brings if it beats it (the same rule as every cell). It
// also lists the rows, already held, whose owner the batch changes: their
// older cells must be tagged again. Rows of tables with no owner, or
// without an owner cell, get no tag (nil).
func rowOwners(changes []syncproto.Change, held map[syncproto.RowKey]map[string]heldCell, fresh map[syncproto.RowKey]bool, ownerCols map[string]string) (map[syncproto.RowKey]any, []syncproto.RowKey) {
	if len(ownerCols) == 0 {
		return nil, nil
	}
	newest := syncproto.NewestWrites(changes, func(table string) (string, bool) {
		col, ok := ownerCols[table]
		return col, ok
	})
	tags := map[syncproto.RowKey]any{}
	var retag []syncproto.RowKey
	for i := range changes {
		c := &changes[i]
		col, owned := ownerCols[c.Table]
		if !owned {
			continue
		}
		k := c.Row()
		if _, done := tags[k]; done {
			continue
		}
		h := held[k][col]
		owner := h.val
		if n, ok := newest[k]; ok && syncproto.Decide(h.ver, changes[n].Version, changes[n].Prev).Outcome == syncproto.Won {
			owner = plain(changes[n].Value)
		}
		tag := ownerTag(owner)
		tags[k] = tag
		if !fresh[k] && ownerTag(h.val) != tag {
			retag = append(retag, k)
		}
	}
	return tags, retag
}

// ownerTag is the text a row's owner is tagged with (see
// syncproto.ValueText, which the scope rules compare owners by), nil for
// none.
func ownerTag(v any) any {
	if v == nil {
		return nil
	}
	return syncproto.ValueText(v)
}

// tagRow sets the owner tag of every cell held for one row; the cells the
// batch wrote have it already.
func tagRow(ctx context.Context, st *stmts, k syncproto.RowKey, tag any) error {
	q, err := st.prepare(ctx, tagRowSQL)
	if err == nil {
		_, err = q.ExecContext(ctx, tag, k.Table, k.PK, tag)
	}
	if err != nil {
		return fmt.Errorf("merge: tag owner of %s %s: %w", k.Table, k.PK, err)
	}
	return nil
}

// TagOwners tags with their row's owner, read from its ownerCol cell,
// the cells of table that have a sequence number and no tag: cells written
// before tags existed, or by a writer that did not pass Options.Owners
// (the demo generator's bulk load). It starts from the untagged cells, by
// the owner index, so that it costs nothing once every cell is tagged.
// It returns the number of cells tagged.
func TagOwners(ctx context.Context, tx *sql.Tx, table, ownerCol string) (int64, error) {
	res, err := tx.ExecContext(ctx, `UPDATE _cells SET owner = o.tag
		FROM (SELECT u.pk, CAST(oc.val AS TEXT) AS tag
			FROM (SELECT DISTINCT pk FROM _cells WHERE owner IS NULL AND seq IS NOT NULL AND tbl = ?1) AS u
			CROSS JOIN _cells AS oc ON oc.tbl = ?1 AND oc.pk = u.pk AND oc.col = ?2
			WHERE oc.val IS NOT NULL) AS o
		WHERE _cells.tbl = ?1 AND _cells.pk = o.pk AND _cells.owner IS NULL`, table, ownerCol)
	if err != nil {
		return 0, fmt.Errorf("tag owners of %s: %w", table, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("tag owners of %s: %w", table, err)
	}
	return n, nil
}

// heldCell is a cell's value and version as the replica holds it.
type heldCell struct {
	val any
	ver syncproto.Version
}

// loadRows reads every cell held for the rows the changes touch: one
// query per table and few hundred rows. Every touched row gets a map,
// empty when the replica holds none of its cells.
func loadRows(ctx context.Context, st *stmts, changes []syncproto.Change) (map[syncproto.RowKey]map[string]heldCell, error) {
	held := map[syncproto.RowKey]map[string]heldCell{}
	pks := map[string][]string{}
	for i := range changes {
		k := changes[i].Row()
		if _, ok := held[k]; !ok {
			held[k] = map[string]heldCell{}
			pks[k.Table] = append(pks[k.Table], k.PK)
		}
	}
	q, err := st.prepare(ctx, loadRowsSQL)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	const chunk = 500
	for table, keys := range pks {
		for len(keys) > 0 {
			part := keys[:min(chunk, len(keys))]
			keys = keys[len(part):]
			list, err := json.Marshal(part)
			if err != nil {
				return nil, fmt.Errorf("merge: read rows of %s: %w", table, err)
			}
			if err := scanCells(ctx, q, table, string(list), held); err != nil {
				return nil, err
			}
		}
	}
	return held, nil
}

func scanCells(ctx context.Context, q *sql.Stmt, table, list string, held map[syncproto.RowKey]map[string]heldCell) error {
	rows, err := q.QueryContext(ctx, table, list)
	if err != nil {
		return fmt.Errorf("merge: read rows of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var pk, col string
		var h heldCell
		var hlc int64
		if err := rows.Scan(&pk, &col, &h.val, &hlc, &h.ver.Node); err != nil {
			return fmt.Errorf("merge: read rows of %s: %w", table, err)
		}
		h.ver.HLC = syncproto.Timestamp(hlc)
		if cells, ok := held[syncproto.RowKey{Table: table, PK: pk}]; ok {
			cells[col] = h
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("merge: read rows of %s: %w", table, err)
	}
	return nil
}

// wholeRow returns the values of a row written for the first time: every
// column of the table, NULL where no cell arrived. Writing the same
// column list for every new row of a table lets one prepared statement
// serve them all, instead of one per combination of present columns.
func wholeRow(t *syncproto.Table, won map[string]any) map[string]any {
	if t == nil {
		return won
	}
	all := make(map[string]any, len(t.Columns)+1)
	for c := range t.Columns {
		all[c] = nil
	}
	for c, v := range won {
		all[c] = v
	}
	return all
}

// isOne reports whether a tombstone value says "deleted".
func isOne(v any) bool {
	switch x := v.(type) {
	case int64:
		return x == 1
	case float64:
		return x == 1
	case []byte:
		return string(x) == "1"
	case string:
		return x == "1"
	}
	return false
}

// stmts caches the statements of one transaction by their text. Preparing
// an upsert on a domain table compiles every trigger of the table into it,
// which on a device (capture and rule triggers) costs far more than
// running it: each shape of statement is prepared once per Apply.
type stmts struct {
	tx  *sql.Tx
	pre *Prepared // statements prepared across transactions, if any
	m   map[string]*sql.Stmt
}

func newStmts(tx *sql.Tx) *stmts { return &stmts{tx: tx, m: map[string]*sql.Stmt{}} }

func (s *stmts) prepare(ctx context.Context, query string) (*sql.Stmt, error) {
	if p, ok := s.m[query]; ok {
		return p, nil
	}
	if parent := s.pre.lookup(query); parent != nil {
		p := s.tx.StmtContext(ctx, parent)
		s.m[query] = p
		return p, nil
	}
	p, err := s.tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.m[query] = p
	return p, nil
}

func (s *stmts) close() {
	for _, p := range s.m {
		p.Close()
	}
}

// RowCells returns the values of one row's known columns as held in _cells.
func RowCells(ctx context.Context, q Queryer, schema *syncproto.Schema, table, pk string) (map[string]any, error) {
	rows, err := q.QueryContext(ctx, "SELECT col, val FROM _cells WHERE tbl = ? AND pk = ?", table, pk)
	if err != nil {
		return nil, fmt.Errorf("merge: read row %s %s: %w", table, pk, err)
	}
	defer rows.Close()
	cols := map[string]any{}
	for rows.Next() {
		var col string
		var val any
		if err := rows.Scan(&col, &val); err != nil {
			return nil, fmt.Errorf("merge: read row %s %s: %w", table, pk, err)
		}
		if _, known := schema.ColumnType(table, col); known {
			cols[col] = val
		}
	}
	return cols, rows.Err()
}

func upsert(ctx context.Context, st *stmts, t *syncproto.Table, pk string, cols map[string]any) error {
	names := make([]string, 0, len(cols))
	for n := range cols {
		if n != syncproto.DeletedColumn {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	args := make([]any, 0, len(names)+1)
	args = append(args, pk)
	for _, n := range names {
		args = append(args, cols[n])
	}
	q, err := st.prepare(ctx, upsertSQL(t, names))
	if err == nil {
		_, err = q.ExecContext(ctx, args...)
	}
	if err != nil {
		return fmt.Errorf("merge: write row %s %s: %w", t.Name, pk, err)
	}
	return nil
}

// Winning cells and new rows are written with multi-row statements, a
// chunk at a time: through database/sql and cgo, each statement run costs
// a few microseconds before SQLite does any work, more than inserting one
// cell. Each chunk size is one statement text, prepared once (kept across
// transactions by Prepared); a remainder smaller than the smallest size
// above one goes a row at a time.
var (
	cellChunks = []int{128, 16, 1}
	rowChunks  = []int{32, 8, 1}
)

// cellWriter buffers winning cells, in the order they won, and writes
// them in chunks. A cell may win twice in one batch: its two rows are in
// the same statement or in successive ones, in order, and SQLite applies
// the rows of an INSERT one after the other, so the later one is held,
// with its seq, as when each was written on its own.
type cellWriter struct {
	st *stmts
	// untagged cells are written with putUntaggedSQL: seq and owner are
	// always NULL, and add is given nil for both.
	untagged bool
	args     []any
	first    []syncproto.Cell // each buffered cell, to name it in an error
}

func (w *cellWriter) add(ctx context.Context, c *syncproto.Change, val, seq, owner any) error {
	if w.untagged {
		w.args = append(w.args, c.Table, c.PK, c.Column, val, int64(c.Version.HLC), c.Version.Node)
	} else {
		w.args = append(w.args, c.Table, c.PK, c.Column, val, int64(c.Version.HLC), c.Version.Node, seq, owner)
	}
	w.first = append(w.first, c.Cell())
	if len(w.first) < cellChunks[0] {
		return nil
	}
	return w.flush(ctx)
}

func (w *cellWriter) flush(ctx context.Context) error {
	per := taggedArgs
	if w.untagged {
		per = untaggedArgs
	}
	for len(w.first) > 0 {
		n := chunkFor(cellChunks, len(w.first))
		q, err := w.st.prepare(ctx, putCellsSQL(n, w.untagged))
		if err == nil {
			_, err = q.ExecContext(ctx, w.args[:n*per]...)
		}
		if err != nil {
			c := w.first[0]
			return fmt.Errorf("merge: write %d cells from %s.%s of %s: %w", n, c.Table, c.Column, c.PK, err)
		}
		w.args = w.args[n*per:]
		w.first = w.first[n:]
	}
	w.args, w.first = w.args[:0], w.first[:0]
	return nil
}

// chunkFor is the largest chunk size not above n.
func chunkFor(sizes []int, n int) int {
	for _, s := range sizes {
		if s <= n {
			return s
		}
	}
	return 1
}

// rowWriter buffers rows new to the replica, each with every column of
// its table (see wholeRow), and writes them per table in chunks.
type rowWriter struct {
	st     *stmts
	tables []*syncproto.Table // in first-buffered order
	rows   map[string]*rowBuf
}

type rowBuf struct {
	names []string // the table's columns, sorted
	args  []any
	pks   []string
}

func (w *rowWriter) add(ctx context.Context, t *syncproto.Table, pk string, cols map[string]any) error {
	if w.rows == nil {
		w.rows = map[string]*rowBuf{}
	}
	b := w.rows[t.Name]
	if b == nil {
		b = &rowBuf{names: t.ColumnNames()}
		w.rows[t.Name] = b
		w.tables = append(w.tables, t)
	}
	b.args = append(b.args, pk)
	for _, c := range b.names {
		b.args = append(b.args, cols[c])
	}
	b.pks = append(b.pks, pk)
	if len(b.pks) < rowChunks[0] {
		return nil
	}
	return w.flush(ctx, t, b)
}

func (w *rowWriter) flush(ctx context.Context, t *syncproto.Table, b *rowBuf) error {
	per := len(b.names) + 1
	for len(b.pks) > 0 {
		n := chunkFor(rowChunks, len(b.pks))
		q, err := w.st.prepare(ctx, newRowsSQL(t, b.names, n))
		if err == nil {
			_, err = q.ExecContext(ctx, b.args[:n*per]...)
		}
		if err != nil {
			return fmt.Errorf("merge: write %d new rows of %s from %s: %w", n, t.Name, b.pks[0], err)
		}
		b.args = b.args[n*per:]
		b.pks = b.pks[n:]
	}
	b.args, b.pks = b.args[:0], b.pks[:0]
	return nil
}

func (w *rowWriter) flushAll(ctx context.Context) error {
	for _, t := range w.tables {
		if err := w.flush(ctx, t, w.rows[t.Name]); err != nil {
			return err
		}
	}
	return nil
}

// putCellsSQL writes n cells, with putCellSQL, or with putUntaggedSQL
// when untagged.
func putCellsSQL(n int, untagged bool) string {
	texts := putCellsTexts
	if untagged {
		texts = putUntaggedTexts
	}
	if q, ok := texts[n]; ok {
		return q
	}
	if untagged {
		return multiRow(putUntaggedSQL, untaggedTuple, n)
	}
	return multiRow(putCellSQL, taggedTuple, n)
}

const (
	taggedArgs    = 8
	taggedTuple   = "(?, ?, ?, ?, ?, ?, ?, ?)"
	untaggedArgs  = 6
	untaggedTuple = "(?, ?, ?, ?, ?, ?)"
)

// putCellsTexts and putUntaggedTexts hold the texts of the chunk sizes,
// built once: each chunk's statement is looked up by its text.
var (
	putCellsTexts    = chunkTexts(putCellSQL, taggedTuple)
	putUntaggedTexts = chunkTexts(putUntaggedSQL, untaggedTuple)
)

func chunkTexts(single, tuple string) map[int]string {
	m := map[int]string{1: single}
	for _, n := range cellChunks {
		if n > 1 {
			m[n] = multiRow(single, tuple, n)
		}
	}
	return m
}

// newRowsSQL writes n new rows of t, every column given (names sorted):
// the text of upsertSQL with n rows of values.
func newRowsSQL(t *syncproto.Table, names []string, n int) string {
	one := upsertSQL(t, names)
	if n == 1 {
		return one
	}
	return multiRow(one, "(?"+strings.Repeat(", ?", len(names))+")", n)
}

// multiRow repeats the first VALUES tuple of a single-row INSERT n times.
func multiRow(single, tuple string, n int) string {
	i := strings.Index(single, tuple)
	if i < 0 {
		panic("replica: no values tuple in " + single)
	}
	var b strings.Builder
	b.Grow(len(single) + (n-1)*(len(tuple)+2))
	b.WriteString(single[:i])
	for j := range n {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple)
	}
	b.WriteString(single[i+len(tuple):])
	return b.String()
}

// The statements Apply runs, as text: Prepared.Warm prepares the same.
const (
	putCellSQL = `INSERT INTO _cells (tbl, pk, col, val, hlc, node, seq, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tbl, pk, col) DO UPDATE SET val = excluded.val, hlc = excluded.hlc, node = excluded.node, seq = excluded.seq, owner = excluded.owner`
	// putUntaggedSQL is putCellSQL with seq and owner NULL, as literals.
	putUntaggedSQL = `INSERT INTO _cells (tbl, pk, col, val, hlc, node) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (tbl, pk, col) DO UPDATE SET val = excluded.val, hlc = excluded.hlc, node = excluded.node, seq = NULL, owner = NULL`
	tagRowSQL   = `UPDATE _cells SET owner = ? WHERE tbl = ? AND pk = ? AND owner IS NOT ?`
	loadRowsSQL = `SELECT pk, col, val, hlc, node FROM _cells
		WHERE tbl = ? AND pk IN (SELECT value FROM json_each(?))`
)

func deleteSQL(t *syncproto.Table) string { return "DELETE FROM " + quote(t.Name) + " WHERE id = ?" }

// upsertSQL writes the given columns (sorted) of one row of t.
func upsertSQL(t *syncproto.Table, names []string) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(quote(t.Name))
	b.WriteString(" (id")
	for _, n := range names {
		b.WriteString(", ")
		b.WriteString(quote(n))
	}
	b.WriteString(") VALUES (?")
	b.WriteString(strings.Repeat(", ?", len(names)))
	b.WriteString(") ON CONFLICT (id) DO ")
	if len(names) == 0 {
		b.WriteString("NOTHING")
	} else {
		b.WriteString("UPDATE SET ")
		for i, n := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quote(n) + " = excluded." + quote(n))
		}
	}
	return b.String()
}

func recordConflict(ctx context.Context, tx *sql.Tx, cell syncproto.Cell, winVal any, win syncproto.Version, loseVal any, lose syncproto.Version, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO _conflicts
		(tbl, pk, col, winner_val, winner_hlc, winner_node, loser_val, loser_hlc, loser_node, detected_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		cell.Table, cell.PK, cell.Column, winVal, int64(win.HLC), win.Node, loseVal, int64(lose.HLC), lose.Node, at.UnixMilli())
	if err != nil {
		return fmt.Errorf("merge: record conflict on %s.%s: %w", cell.Table, cell.Column, err)
	}
	return nil
}

// plain turns a decoded JSON number into the int64 or float64 SQLite
// should store; Schema.Check already did this for known columns, and
// cells kept aside need it too.
func plain(v any) any {
	n, ok := v.(json.Number)
	if !ok {
		return v
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return n.String()
}

// Rematerialise rebuilds one domain row from its cells: deleted if its
// tombstone says so, otherwise upserted with every known column.
func Rematerialise(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema, table, pk string) error {
	if _, ok := schema.Tables[table]; !ok {
		return nil
	}
	var tomb sql.NullInt64
	err := tx.QueryRowContext(ctx, "SELECT val FROM _cells WHERE tbl = ? AND pk = ? AND col = ?",
		table, pk, syncproto.DeletedColumn).Scan(&tomb)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("merge: read tombstone of %s %s: %w", table, pk, err)
	}
	st := newStmts(tx)
	defer st.close()
	return materialise(ctx, tx, st, schema, syncproto.RowKey{Table: table, PK: pk}, map[string]any{syncproto.DeletedColumn: nil}, tomb.Valid && tomb.Int64 == 1)
}
