package replica

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/relais-numerique/relais/syncproto"
)

// Cell is a cell as a replica holds it: its value and version.
type Cell struct {
	Value   any
	Version syncproto.Version
}

// HeldRow returns every cell held for one row, by column: the versions
// from the row's record, the values from its domain row (or its extra
// values when deleted or unknown to the schema). Nil when the replica
// holds no version of the row. On a device the versions are those
// received and acknowledged, not its pending writes.
func HeldRow(ctx context.Context, q DB, schema *syncproto.Schema, table, pk string) (map[string]Cell, error) {
	d, err := loadDict(ctx, q)
	if err != nil {
		return nil, err
	}
	tid, ok := d.tables[table]
	if !ok {
		return nil, nil
	}
	recs := map[string]*record{}
	if err := loadRecords(ctx, q, tid, []string{pk}, recs); err != nil {
		return nil, err
	}
	r := recs[pk]
	if r == nil {
		return nil, nil
	}
	out, err := cellsOf(ctx, q, schema, d, r, nil)
	if err != nil {
		return nil, fmt.Errorf("read row %s %s: %w", table, pk, err)
	}
	return out, nil
}

// cellsOf expands a record into its cells; live holds its domain row
// when the caller read it already.
func cellsOf(ctx context.Context, q DB, schema *syncproto.Schema, d *dict, r *record, live map[string]any) (map[string]Cell, error) {
	nodes := map[int64]bool{}
	for _, c := range r.clocks {
		nodes[c.node] = true
	}
	if err := d.resolve(ctx, nodes, nil); err != nil {
		return nil, err
	}
	table := d.tableNames[r.tbl]
	t := schema.Tables[table]
	if live == nil && !r.deleted && t != nil {
		row, err := readDomainRow(ctx, q, t, r.pk)
		if err != nil {
			return nil, err
		}
		live = row
	}
	names := d.colNames[r.tbl]
	out := make(map[string]Cell, len(r.clocks))
	for _, c := range r.clocks {
		col := names[c.bit]
		cell := Cell{Version: d.version(c)}
		switch {
		case c.bit == DeletedBit:
			cell.Value = int64(0)
			if r.deleted {
				cell.Value = int64(1)
			}
		case !r.deleted && t != nil && isKnown(schema, table, col):
			cell.Value = live[col]
		default:
			m, err := r.extraVals()
			if err != nil {
				return nil, err
			}
			cell.Value = m[col]
		}
		out[col] = cell
	}
	return out, nil
}

// ReadCells returns the cells held for some columns of one row, with
// their versions, in the order of cols; a column with no cell is left
// out. The server answers a refused row with them, so that the device
// can put the row back as the server holds it.
func ReadCells(ctx context.Context, q DB, schema *syncproto.Schema, table, pk string, cols []string) ([]syncproto.Change, error) {
	held, err := HeldRow(ctx, q, schema, table, pk)
	if err != nil {
		return nil, err
	}
	out := make([]syncproto.Change, 0, len(cols))
	for _, col := range cols {
		c, ok := held[col]
		if !ok {
			continue
		}
		out = append(out, syncproto.Change{Table: table, PK: pk, Column: col, Value: c.Value, Version: c.Version})
	}
	return out, nil
}

// RowCells returns the values of one row's known columns as held.
func RowCells(ctx context.Context, q DB, schema *syncproto.Schema, table, pk string) (map[string]any, error) {
	held, err := HeldRow(ctx, q, schema, table, pk)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for col, c := range held {
		if _, known := schema.ColumnType(table, col); known {
			out[col] = c.Value
		}
	}
	return out, nil
}

// EachCell calls fn with every cell the replica holds, table by table
// (in name order), row by row (in key order), column by column (in name
// order). Tests and the fault simulation compare replicas by it.
func EachCell(ctx context.Context, q DB, schema *syncproto.Schema, fn func(c syncproto.Change, seq int64) error) error {
	d, err := loadDict(ctx, q)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(d.tables))
	for n := range d.tables {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, table := range names {
		tid := d.tables[table]
		rows, err := q.QueryContext(ctx, "SELECT "+recordCols+" FROM _rows WHERE tbl = ?", tid)
		if err != nil {
			return fmt.Errorf("read versions of %s: %w", table, err)
		}
		var recs []*record
		for rows.Next() {
			r, err := scanRecord(rows, tid, nil)
			if err != nil {
				rows.Close()
				return fmt.Errorf("read versions of %s: %w", table, err)
			}
			recs = append(recs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read versions of %s: %w", table, err)
		}
		slices.SortFunc(recs, func(a, b *record) int {
			switch {
			case a.pk < b.pk:
				return -1
			case a.pk > b.pk:
				return 1
			}
			return 0
		})
		var live map[*record]map[string]any
		if t := schema.Tables[table]; t != nil {
			var alive []*record
			for _, r := range recs {
				if !r.deleted {
					alive = append(alive, r)
				}
			}
			if live, err = readDomainRows(ctx, q, t, alive); err != nil {
				return err
			}
		}
		for _, r := range recs {
			l := live[r]
			if l == nil {
				l = map[string]any{}
			}
			cells, err := cellsOf(ctx, q, schema, d, r, l)
			if err != nil {
				return err
			}
			cols := make([]string, 0, len(cells))
			for c := range cells {
				cols = append(cols, c)
			}
			slices.Sort(cols)
			seqs := map[string]int64{}
			for _, c := range r.clocks {
				seqs[d.colNames[r.tbl][c.bit]] = c.seq
			}
			for _, col := range cols {
				c := cells[col]
				if err := fn(syncproto.Change{Table: table, PK: r.pk, Column: col, Value: c.Value, Version: c.Version}, seqs[col]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Values returns some columns of some rows of a table as held, live or
// deleted (a deleted row's values are kept in its record): pk -> column
// -> value, rows the replica does not hold left out. The server's scope
// rules decide with them who sees a row, its tombstone included.
func Values(ctx context.Context, q DB, schema *syncproto.Schema, table string, pks, cols []string) (map[string]map[string]any, error) {
	out := make(map[string]map[string]any, len(pks))
	d, err := loadDict(ctx, q)
	if err != nil {
		return nil, err
	}
	tid, ok := d.tables[table]
	if !ok || len(pks) == 0 {
		return out, nil
	}
	if t := schema.Tables[table]; t != nil {
		if pks, err = liveValuesOf(ctx, q, schema, t, tid, pks, cols, out); err != nil {
			return nil, err
		}
		if len(pks) == 0 {
			return out, nil
		}
	}
	recs := make(map[string]*record, len(pks))
	if err := loadRecords(ctx, q, tid, pks, recs); err != nil {
		return nil, err
	}
	var alive []*record
	for _, r := range recs {
		if !r.deleted {
			alive = append(alive, r)
		}
	}
	var live map[*record]map[string]any
	if t := schema.Tables[table]; t != nil {
		if live, err = readDomainRows(ctx, q, t, alive, cols...); err != nil {
			return nil, err
		}
	}
	for pk, r := range recs {
		m := make(map[string]any, len(cols))
		l := live[r]
		for _, col := range cols {
			if l != nil && isKnown(schema, table, col) {
				m[col] = l[col]
				continue
			}
			ex, err := r.extraVals()
			if err != nil {
				return nil, err
			}
			m[col] = ex[col]
		}
		out[pk] = m
	}
	return out, nil
}

// liveValuesOf reads cols of the live rows among pks in one query per
// few hundred keys: the domain rows joined with their records, which must
// be live (deleted = 0), by the UUID's bytes (PKSQL). That is what Values
// reads for such a row, in half the queries and without decoding the
// records' clocks: the scope rules read an activity's date this way for
// every accompaniment, beneficiary and anonymous participants' row a
// coordinator pulls, and the two queries were most of the pull's
// lookups (BENCHMARKS.md, "What limits it now"). It fills out and
// returns the keys it could not answer, to be read as before: deleted
// rows (their values are in their records' extra), live records without
// a domain row, keys that are not UUIDs, rows the replica does not hold,
// and every key when a column asked for is not in the schema's table.
func liveValuesOf(ctx context.Context, q DB, schema *syncproto.Schema, t *syncproto.Table, tid int64, pks, cols []string, out map[string]map[string]any) ([]string, error) {
	for _, c := range cols {
		if !isKnown(schema, t.Name, c) {
			return pks, nil
		}
	}
	var rest, uuids []string
	seen := make(map[string]bool, len(pks))
	for _, pk := range pks {
		if seen[pk] {
			continue
		}
		seen[pk] = true
		if _, ok := syncproto.ParseUUID(pk); ok {
			uuids = append(uuids, pk)
		} else {
			rest = append(rest, pk)
		}
	}
	list := make([]string, 0, len(cols)+1)
	list = append(list, "d.id")
	for _, c := range cols {
		list = append(list, "d."+quote(c))
	}
	head := "SELECT " + strings.Join(list, ", ") + " FROM " + quote(t.Name) + " d JOIN _rows r ON r.tbl = ? AND r.pk = " + PKSQL("d.id") + " AND r.deleted = 0 WHERE d.id IN ("
	vals := make([]any, len(cols)+1)
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	const chunk = 400
	for part := range slices.Chunk(uuids, chunk) {
		args := make([]any, 0, len(part)+1)
		args = append(args, tid)
		for _, pk := range part {
			args = append(args, pk)
		}
		rows, err := q.QueryContext(ctx, head+placeholders(len(part))+")", args...)
		if err != nil {
			return nil, fmt.Errorf("read rows of %s: %w", t.Name, err)
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read rows of %s: %w", t.Name, err)
			}
			m := make(map[string]any, len(cols))
			for i, c := range cols {
				m[c] = sqlValue(vals[i+1])
			}
			out[PKText(vals[0])] = m
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read rows of %s: %w", t.Name, err)
		}
		for _, pk := range part {
			if _, ok := out[pk]; !ok {
				rest = append(rest, pk)
			}
		}
	}
	return rest, nil
}

// Renumber gives the rows of keys the next sequence numbers, every
// column of them, in the order of their current numbers, so that devices
// whose cursor is past them receive them again (scope.Reannounce: a write
// widened who may see them). Rows whose columns were all numbered after
// before (by the batch being committed) are left alone. It returns the
// number of rows renumbered.
func Renumber(ctx context.Context, tx *sql.Tx, keys []syncproto.RowKey, before int64) (int64, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	// The records are read under the sequence lock: with several servers
	// on one database, one read before it could be written back over
	// another server's newer cells.
	if _, err := drawSeq(ctx, tx, 0); err != nil {
		return 0, fmt.Errorf("renumber: %w", err)
	}
	d, err := loadDict(ctx, tx)
	if err != nil {
		return 0, err
	}
	byTable := map[string][]string{}
	for _, k := range keys {
		byTable[k.Table] = append(byTable[k.Table], k.PK)
	}
	var recs []*record
	for table, pks := range byTable {
		tid, ok := d.tables[table]
		if !ok {
			continue
		}
		m := map[string]*record{}
		if err := loadRecords(ctx, tx, tid, slices.Compact(slices.Sorted(slices.Values(pks))), m); err != nil {
			return 0, err
		}
		for _, r := range m {
			if !r.seq.Valid {
				continue
			}
			for _, c := range r.clocks {
				if c.seq <= before {
					recs = append(recs, r)
					break
				}
			}
		}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	slices.SortFunc(recs, func(a, b *record) int { return int(a.seq.Int64 - b.seq.Int64) })
	first, err := drawSeq(ctx, tx, int64(len(recs)))
	if err != nil {
		return 0, fmt.Errorf("renumber: %w", err)
	}
	seq := first - 1
	st := newStmts(tx)
	defer st.close()
	w := &recordWriter{st: st}
	for _, r := range recs {
		seq++
		r.seq.Int64 = seq
		for i := range r.clocks {
			r.clocks[i].seq = seq
		}
		if err := w.add(ctx, r); err != nil {
			return 0, err
		}
	}
	if err := w.flush(ctx); err != nil {
		return 0, err
	}
	return int64(len(recs)), nil
}

// TagOwners records the owner of the rows of table that have a sequence
// number and no owner, from their ownerCol value: rows written by a
// writer that did not pass Options.Owners (the demo generator's bulk
// load). It starts from the rows without owner, by the owner index, so
// that it costs little once every row has its owner. It returns the
// number of rows tagged.
func TagOwners(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema, table, ownerCol string) (int64, error) {
	d, err := loadDict(ctx, tx)
	if err != nil {
		return 0, err
	}
	tid, ok := d.tables[table]
	if !ok {
		return 0, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT pk FROM _rows WHERE owner IS NULL AND seq IS NOT NULL AND tbl = ?", tid)
	if err != nil {
		return 0, fmt.Errorf("tag owners of %s: %w", table, err)
	}
	var pks []string
	for rows.Next() {
		var pk any
		if err := rows.Scan(&pk); err != nil {
			rows.Close()
			return 0, fmt.Errorf("tag owners of %s: %w", table, err)
		}
		pks = append(pks, PKText(pk))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("tag owners of %s: %w", table, err)
	}
	if len(pks) == 0 {
		return 0, nil
	}
	vals, err := Values(ctx, tx, schema, table, pks, []string{ownerCol})
	if err != nil {
		return 0, err
	}
	var n int64
	for pk, m := range vals {
		tag := ownerTag(m[ownerCol])
		if tag == nil {
			continue
		}
		id, err := d.owner(ctx, tag.(string))
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE _rows SET owner = ? WHERE tbl = ? AND pk = ?", id, tid, PKArg(pk)); err != nil {
			return 0, fmt.Errorf("tag owners of %s: %w", table, err)
		}
		n++
	}
	return n, nil
}

// MaxHLC is the newest version the replica holds a record of.
func MaxHLC(ctx context.Context, q DB) (syncproto.Timestamp, error) {
	rows, err := q.QueryContext(ctx, "SELECT clocks FROM _rows")
	if err != nil {
		return 0, fmt.Errorf("newest version: %w", err)
	}
	defer rows.Close()
	var m int64
	var buf []colClock
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return 0, fmt.Errorf("newest version: %w", err)
		}
		if buf, err = decodeClocks(buf[:0], b); err != nil {
			return 0, err
		}
		for _, c := range buf {
			m = max(m, c.hlc)
		}
	}
	return syncproto.Timestamp(m), rows.Err()
}

var _ = errors.Is

// Versions returns the versions held for some rows of a table: pk ->
// column -> version (on a device: received or acknowledged, its pending
// writes left out).
func Versions(ctx context.Context, q DB, table string, pks []string) (map[string]map[string]syncproto.Version, error) {
	out := map[string]map[string]syncproto.Version{}
	d, err := loadDict(ctx, q)
	if err != nil {
		return nil, err
	}
	tid, ok := d.tables[table]
	if !ok || len(pks) == 0 {
		return out, nil
	}
	recs := map[string]*record{}
	if err := loadRecords(ctx, q, tid, pks, recs); err != nil {
		return nil, err
	}
	nodes := map[int64]bool{}
	for _, r := range recs {
		for _, c := range r.clocks {
			nodes[c.node] = true
		}
	}
	if err := d.resolve(ctx, nodes, nil); err != nil {
		return nil, err
	}
	names := d.colNames[tid]
	for pk, r := range recs {
		m := make(map[string]syncproto.Version, len(r.clocks))
		for _, c := range r.clocks {
			m[names[c.bit]] = d.version(c)
		}
		out[pk] = m
	}
	return out, nil
}

// PutBack makes a device hold some cells of one row as the server holds
// them, after the server refused the device's writes to them: cur are
// the server's cells (value and version), cols the refused columns to
// put back, those missing from cur being cells the server has none of.
// pendingLeft says whether the device still has writes of the row in its
// outbox; when it has none and no version of the row is left, the row
// goes (a new row the server refused).
func PutBack(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema, table, pk string, cur []syncproto.Change, cols []string, pendingLeft bool) error {
	d, err := loadDict(ctx, tx)
	if err != nil {
		return err
	}
	tid, err := d.table(ctx, table)
	if err != nil {
		return err
	}
	recs := map[string]*record{}
	if err := loadRecords(ctx, tx, tid, []string{pk}, recs); err != nil {
		return err
	}
	r := recs[pk]
	if r == nil {
		r = &record{tbl: tid, pk: pk}
	}
	s := &rowState{key: syncproto.RowKey{Table: table, PK: pk}, rec: r, wasDeleted: r.deleted, won: map[string]any{}}
	byCol := map[string]syncproto.Change{}
	for _, c := range cur {
		byCol[c.Column] = c
	}
	for _, col := range cols {
		bit, err := d.column(ctx, tid, col)
		if err != nil {
			return err
		}
		c, has := byCol[col]
		if has {
			nid, err := d.node(ctx, c.Version.Node)
			if err != nil {
				return err
			}
			r.setClock(colClock{bit: bit, hlc: int64(c.Version.HLC), node: nid})
			s.won[col] = plain(c.Value)
		} else {
			i := slices.IndexFunc(r.clocks, func(x colClock) bool { return x.bit == bit })
			if i >= 0 {
				r.clocks = slices.Delete(r.clocks, i, i+1)
			}
			r.dirty = true
			s.won[col] = nil
		}
		if col == syncproto.DeletedColumn {
			r.deleted = has && isOne(c.Value)
		}
	}
	t := schema.Tables[table]
	if len(r.clocks) == 0 && !pendingLeft {
		if t != nil {
			if _, err := tx.ExecContext(ctx, deleteSQL(t), pk); err != nil {
				return fmt.Errorf("put back %s %s: %w", table, pk, err)
			}
		}
		if r.held {
			if _, err := tx.ExecContext(ctx, "DELETE FROM _rows WHERE tbl = ? AND pk = ?", tid, PKArg(pk)); err != nil {
				return fmt.Errorf("put back %s %s: %w", table, pk, err)
			}
		}
		return nil
	}
	st := newStmts(tx)
	defer st.close()
	rw := &rowWriter{st: st}
	if err := s.materialise(ctx, tx, st, schema, rw); err != nil {
		return err
	}
	if err := rw.flushAll(ctx); err != nil {
		return err
	}
	w := &recordWriter{st: st}
	if err := w.add(ctx, r); err != nil {
		return err
	}
	return w.flush(ctx)
}

// MaterialiseColumn moves the values of a column a migration just added
// from the records' extra values, where they were kept aside, into the
// domain rows of live rows. It returns the number of rows written.
func MaterialiseColumn(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema, table, col string) (int, error) {
	t := schema.Tables[table]
	if t == nil {
		return 0, nil
	}
	d, err := loadDict(ctx, tx)
	if err != nil {
		return 0, err
	}
	tid, ok := d.tables[table]
	if !ok {
		return 0, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+recordCols+" FROM _rows WHERE tbl = ? AND deleted = 0 AND extra IS NOT NULL", tid)
	if err != nil {
		return 0, fmt.Errorf("materialise %s.%s: %w", table, col, err)
	}
	var recs []*record
	for rows.Next() {
		r, err := scanRecord(rows, tid, nil)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("materialise %s.%s: %w", table, col, err)
		}
		recs = append(recs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("materialise %s.%s: %w", table, col, err)
	}
	st := newStmts(tx)
	defer st.close()
	w := &recordWriter{st: st}
	n := 0
	for _, r := range recs {
		m, err := r.extraVals()
		if err != nil {
			return n, err
		}
		v, ok := m[col]
		if !ok {
			continue
		}
		if err := upsert(ctx, st, t, r.pk, map[string]any{col: v}); err != nil {
			return n, err
		}
		delete(m, col)
		r.dirty = true
		if err := w.add(ctx, r); err != nil {
			return n, err
		}
		n++
	}
	return n, w.flush(ctx)
}

// Dictionary numbers every table and column of schema in the replica's
// dictionaries (those not numbered yet) and returns the tables' numbers.
// A device's capture triggers name tables by these numbers.
func Dictionary(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema) (map[string]int64, error) {
	d, err := loadDict(ctx, tx)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, name := range schema.TableNames() {
		tid, err := d.table(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, col := range schema.Tables[name].ColumnNames() {
			if _, err := d.column(ctx, tid, col); err != nil {
				return nil, err
			}
		}
		out[name] = tid
	}
	return out, nil
}

// ClockReader decodes copies of records' clocks kept elsewhere: a
// device's frozen outbox entries keep the clocks their row's record had
// when they were frozen, the base of their prev. It reads the
// dictionaries once, in the caller's transaction.
type ClockReader struct{ d *dict }

// NewClockReader reads the dictionaries for Versions.
func NewClockReader(ctx context.Context, q DB) (*ClockReader, error) {
	d, err := loadDict(ctx, q)
	if err != nil {
		return nil, err
	}
	return &ClockReader{d: d}, nil
}

// Versions decodes a clocks blob of a row of table: column -> version.
func (c *ClockReader) Versions(ctx context.Context, table string, clocks []byte) (map[string]syncproto.Version, error) {
	cs, err := decodeClocks(nil, clocks)
	if err != nil {
		return nil, err
	}
	tid, ok := c.d.tables[table]
	if !ok {
		return nil, fmt.Errorf("replica: clocks of table %s, which has no number", table)
	}
	nodes := map[int64]bool{}
	for _, x := range cs {
		nodes[x.node] = true
	}
	if err := c.d.resolve(ctx, nodes, nil); err != nil {
		return nil, err
	}
	names := c.d.colNames[tid]
	out := make(map[string]syncproto.Version, len(cs))
	for _, x := range cs {
		if x.bit < len(names) && names[x.bit] != "" {
			out[names[x.bit]] = c.d.version(x)
		}
	}
	return out, nil
}
