package replica

import (
	"container/heap"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"
	"github.com/relais-numerique/relais/syncproto"
)

// Page is one page of cells read by sequence number.
type Page struct {
	Changes []syncproto.Change
	// Owners holds, for ReadOwned, the owner of each cell of Changes'
	// row ("" for rows without one).
	Owners []string
	// Cursor is the sequence number to resume after.
	Cursor int64
	More   bool
}

// CellFilter decides whether a cell read for a pull is sent. It can also
// rewrite the change (to blank a column the reader may not see). Cells it
// drops still advance the cursor.
type CellFilter func(c *syncproto.Change) bool

// DB is what reading and writing a replica needs; *sql.DB and *sql.Tx
// have it.
type DB = execQueryer

// ReadPage returns the rows changed after cursor, in sequence order,
// every cell of each (a row's cells are never split across pages), until
// at least limit cells are read, skipping those the filter drops.
func ReadPage(ctx context.Context, q DB, schema *syncproto.Schema, cursor int64, limit int, keep CellFilter) (Page, error) {
	return readRows(ctx, q, schema, cursor, limit, nil, true, keep)
}

// ReadOwned is ReadPage restricted to the rows of owners (see
// Options.Owners); the empty string stands for rows without an owner
// (tables without one). It reads each owner's rows by the owner index,
// in sequence order, and merges them: a device's pull then costs what
// that device may receive, not every row the fleet wrote since its
// cursor. Limit and cursor mean what they mean for ReadPage, over the
// merged rows. Page.Owners gives each kept cell's owner.
func ReadOwned(ctx context.Context, q DB, schema *syncproto.Schema, cursor int64, limit int, owners []string, keep CellFilter) (Page, error) {
	return readRows(ctx, q, schema, cursor, limit, owners, false, keep)
}

func readRows(ctx context.Context, q DB, schema *syncproto.Schema, cursor int64, limit int, owners []string, all bool, keep CellFilter) (Page, error) {
	p := Page{Cursor: cursor}
	if limit <= 0 || (!all && len(owners) == 0) {
		return p, nil
	}
	d, err := loadDict(ctx, q)
	if err != nil {
		return p, err
	}
	var arms [][]int64 // owner ids per query; -1 stands for "no owner"
	if all {
		arms = [][]int64{nil}
	} else {
		owners = slices.Compact(slices.Sorted(slices.Values(owners)))
		var named []string
		none := false
		for _, o := range owners {
			if o == "" {
				none = true
			} else {
				named = append(named, o)
			}
		}
		ids, err := d.knownOwners(ctx, named)
		if err != nil {
			return p, err
		}
		if none {
			ids = append(ids, -1)
		}
		if len(ids) == 0 {
			return p, nil
		}
		for g := range slices.Chunk(ids, ownersPerQuery) {
			arms = append(arms, g)
		}
	}
	// SQLite merges the owners' index ranges itself (one compound select
	// ordered by seq, see rowStream.fill), so that a page reads the rows
	// it returns and no more. Only past ownersPerQuery owners are several
	// such streams merged here, each fetching a chunk at a time; a
	// stream that runs dry doubles its next chunk.
	chunk := min(limit+1, 256)
	h := make(streamHeap, 0, len(arms))
	streams := make([]*rowStream, 0, len(arms))
	defer func() {
		for _, s := range streams {
			s.release()
		}
	}()
	for _, g := range arms {
		s := &rowStream{owners: g, all: all, after: cursor, chunk: chunk, max: max(chunk, min(limit+1, 4096))}
		streams = append(streams, s)
		if err := s.fill(ctx, q); err != nil {
			return p, err
		}
		if len(s.buf) > 0 {
			h = append(h, s)
		}
	}
	heap.Init(&h)
	// Pick the rows of the page, in sequence order, until they hold
	// limit cells.
	var picked []*record
	n := 0
	for h.Len() > 0 {
		if n >= limit {
			p.More = true
			break
		}
		s := h[0]
		r := s.buf[s.next]
		s.next++
		n += len(r.clocks)
		picked = append(picked, r)
		if s.next == len(s.buf) && !s.done {
			s.chunk = nextChunk(s.chunk, limit-n, n, len(picked), s.max)
			if err := s.fill(ctx, q); err != nil {
				return p, err
			}
		}
		if s.next == len(s.buf) {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	if len(picked) == 0 {
		return p, nil
	}
	nodes, ownerIDs := map[int64]bool{}, map[int64]bool{}
	for _, r := range picked {
		for _, c := range r.clocks {
			nodes[c.node] = true
		}
		if r.owner.Valid {
			ownerIDs[r.owner.Int64] = true
		}
	}
	if err := d.resolve(ctx, nodes, ownerIDs); err != nil {
		return p, err
	}
	vals, err := liveValues(ctx, q, schema, d, picked)
	if err != nil {
		return p, err
	}
	p.Changes = make([]syncproto.Change, 0, n)
	p.Owners = make([]string, 0, n)
	for _, r := range picked {
		table := d.tableNames[r.tbl]
		names := d.colNames[r.tbl]
		owner := ""
		if r.owner.Valid {
			owner = d.ownerNames[r.owner.Int64]
		}
		live, pos := vals.vals[r], vals.pos[r.tbl]
		// The whole row, not only its columns changed after cursor: a
		// row moves to a new number whenever a column changes, so a
		// reader whose cursor passed a column's number may have done so
		// after the row had moved on, and never received it.
		for _, c := range r.clocks {
			col := ""
			if c.bit < len(names) {
				col = names[c.bit]
			}
			ch := syncproto.Change{Table: table, PK: r.pk, Column: col, Version: d.version(c)}
			switch {
			case c.bit == DeletedBit:
				ch.Value = int64(0)
				if r.deleted {
					ch.Value = int64(1)
				}
			case live != nil && c.bit < len(pos) && pos[c.bit] >= 0:
				ch.Value = live[pos[c.bit]]
			default:
				m, err := r.extraVals()
				if err != nil {
					return p, err
				}
				ch.Value = m[col]
			}
			if keep == nil || keep(&ch) {
				p.Changes = append(p.Changes, ch)
				p.Owners = append(p.Owners, owner)
			}
		}
		p.Cursor = r.seq.Int64
	}
	if all {
		p.Owners = nil
	}
	return p, nil
}

func isKnown(schema *syncproto.Schema, table, col string) bool {
	_, ok := schema.ColumnType(table, col)
	return ok && schema.Tables[table] != nil
}

// liveRows are the domain rows of a page's live records, each as its
// values in the order of its table's columns: a map per row was a tenth
// of a coordinator's first pull (allocating it and filling it by name).
type liveRows struct {
	vals map[*record][]any
	// pos maps a table's column numbers (bits) to the index of the
	// column's value in vals' rows; -1 for a column the schema's table
	// does not have (its value is in the record's extra).
	pos map[int64][]int
}

// liveValues reads the domain rows of the live records among rs, a query
// per table and few hundred rows.
func liveValues(ctx context.Context, q DB, schema *syncproto.Schema, d *dict, rs []*record) (liveRows, error) {
	out := liveRows{vals: make(map[*record][]any, len(rs)), pos: map[int64][]int{}}
	byTable := map[int64][]*record{}
	for _, r := range rs {
		if r.deleted {
			continue
		}
		if schema.Tables[d.tableNames[r.tbl]] == nil {
			continue
		}
		byTable[r.tbl] = append(byTable[r.tbl], r)
	}
	for tbl, list := range byTable {
		t := schema.Tables[d.tableNames[tbl]]
		names, err := readDomainValues(ctx, q, t, list, nil, out.vals)
		if err != nil {
			return out, err
		}
		pos := make([]int, len(d.colNames[tbl]))
		for bit, col := range d.colNames[tbl] {
			pos[bit] = slices.Index(names, col)
		}
		out.pos[tbl] = pos
	}
	return out, nil
}

// readDomainRows reads every column of the domain rows of some records
// of table t (only those of only, when given).
func readDomainRows(ctx context.Context, q DB, t *syncproto.Table, rs []*record, only ...string) (map[*record]map[string]any, error) {
	vals := make(map[*record][]any, len(rs))
	names, err := readDomainValues(ctx, q, t, rs, only, vals)
	if err != nil {
		return nil, err
	}
	out := make(map[*record]map[string]any, len(vals))
	for r, row := range vals {
		m := make(map[string]any, len(names))
		for i, n := range names {
			m[n] = row[i]
		}
		out[r] = m
	}
	return out, nil
}

// readDomainValues reads the columns of the domain rows of some records
// of table t into out, each row's values in the order of the names it
// returns: the table's columns, or those of only when given.
func readDomainValues(ctx context.Context, q DB, t *syncproto.Table, rs []*record, only []string, out map[*record][]any) ([]string, error) {
	names := t.ColumnNames()
	if only != nil {
		// The columns asked for that the table has, in its order: the
		// scope rules' look-ups want one column of rows that may have
		// twenty (a pull reads every activity's date this way).
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(only, n) })
	}
	sel := make([]string, 0, len(names)+1)
	sel = append(sel, "id")
	for _, n := range names {
		sel = append(sel, quote(n))
	}
	head := "SELECT " + strings.Join(sel, ", ") + " FROM " + quote(t.Name) + " WHERE id IN ("
	const chunk = 400
	vals := make([]any, len(sel))
	ptrs := make([]any, len(sel))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for len(rs) > 0 {
		part := rs[:min(chunk, len(rs))]
		rs = rs[len(part):]
		byPK := make(map[string]*record, len(part))
		args := make([]any, len(part))
		for i, r := range part {
			args[i] = r.pk
			byPK[r.pk] = r
		}
		rows, err := q.QueryContext(ctx, head+placeholders(len(part))+")", args...)
		if err != nil {
			return nil, fmt.Errorf("read rows of %s: %w", t.Name, err)
		}
		// One backing array for the chunk's rows.
		backing := make([]any, len(part)*len(names))
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read rows of %s: %w", t.Name, err)
			}
			r := byPK[PKText(vals[0])]
			if r == nil || len(backing) < len(names) {
				continue
			}
			row := backing[:len(names):len(names)]
			backing = backing[len(names):]
			for i := range names {
				row[i] = sqlValue(vals[i+1])
			}
			out[r] = row
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read rows of %s: %w", t.Name, err)
		}
	}
	return names, nil
}

// nextChunk is how many rows a stream fetches next when the page still
// wants need cells, having picked rows holding cells so far: as many as
// the rows picked so far say the rest will take, and a quarter more.
// Doubling from 256 rows, a page of 10,000 cells (about 1,200 rows of
// the demo département) fetched 256, 512 and 1,024 rows and left 560 of
// them to be read again by the next page, a third of a coordinator's
// first sync read twice. doubled is the chunk doubling would take,
// which a stream keeps when the page says nothing yet (no cells).
func nextChunk(doubled, need, cells, rows, most int) int {
	if cells <= 0 || need <= 0 {
		return doubled
	}
	est := need*rows/cells + 1
	return min(max(est+est/4+8, 16), most)
}

// ownersPerQuery bounds the arms of one compound select, well under
// SQLite's limit (SQLITE_MAX_COMPOUND_SELECT, 500 by default) and what a
// coordinator's team needs.
var ownersPerQuery = 64 // a variable for tests to exercise several streams

// Stream buffers are kept for the next pulls: allocating one for each
// pull was a visible share of the server's CPU at 17:00, when a
// conseiller's pull asks for thousands of cells and finds a handful
// (BENCHMARKS.md, "Figures behind the code").
var streamBuffers sync.Pool

func takeBuffer(n int) []*record {
	if b, ok := streamBuffers.Get().(*[]*record); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]*record, 0, n)
}

// release gives the stream's buffer back, emptied so that it does not
// keep the page's records alive.
func (s *rowStream) release() {
	if cap(s.buf) == 0 {
		return
	}
	clear(s.buf)
	b := s.buf[:0]
	s.buf = nil
	streamBuffers.Put(&b)
}

// rowStream is some owners' rows above a sequence number, in sequence
// order, read ahead by chunks.
type rowStream struct {
	owners []int64 // -1: rows without owner
	all    bool    // every row, whatever its owner
	after  int64   // the last sequence number fetched
	buf    []*record
	next   int  // the first row of buf not yet merged
	done   bool // the last fetch came back short: nothing more
	chunk  int  // rows to fetch next, doubling up to max
	max    int
}

// rowsQuery merges the rows of owners in sequence order: SQLite runs a
// compound select ordered by a column every arm reads in index order as a
// merge of the arms, reading each only as far as the LIMIT needs. ?1 is
// the cursor, then come the owner ids, then the limit.
func rowsQuery(owners []int64, all bool) string {
	const cols = "SELECT tbl, " + recordCols + " FROM _rows WHERE "
	if all {
		return cols + "seq > ?1 ORDER BY seq LIMIT ?2"
	}
	var b strings.Builder
	n := 1
	for i, o := range owners {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		if o == -1 {
			b.WriteString(cols + "owner IS NULL AND seq > ?1")
			continue
		}
		n++
		fmt.Fprintf(&b, cols+"owner = ?%d AND seq > ?1", n)
	}
	fmt.Fprintf(&b, " ORDER BY 4 LIMIT ?%d", n+1)
	return b.String()
}

func (s *rowStream) fill(ctx context.Context, q DB) error {
	chunk := s.chunk
	s.chunk = min(2*s.chunk, s.max)
	args := make([]any, 0, len(s.owners)+2)
	args = append(args, s.after)
	for _, o := range s.owners {
		if o != -1 {
			args = append(args, o)
		}
	}
	args = append(args, chunk)
	rows, err := q.QueryContext(ctx, rowsQuery(s.owners, s.all), args...)
	if err != nil {
		return fmt.Errorf("read rows of %d owners after %d: %w", len(s.owners), s.after, err)
	}
	defer rows.Close()
	if cap(s.buf) < chunk {
		s.buf = takeBuffer(chunk)
	}
	s.buf, s.next = s.buf[:0], 0
	for rows.Next() {
		var tbl int64
		r := &record{held: true}
		var pk any
		var clocks []byte
		var deleted int64
		if err := rows.Scan(&tbl, &pk, &r.owner, &r.seq, &deleted, &clocks, &r.extraJS); err != nil {
			return fmt.Errorf("read rows after %d: %w", s.after, err)
		}
		r.tbl, r.pk, r.deleted = tbl, PKText(pk), deleted == 1
		if r.clocks, err = decodeClocks(nil, clocks); err != nil {
			return fmt.Errorf("read rows after %d: %w (row %s)", s.after, err, r.pk)
		}
		s.buf = append(s.buf, r)
		s.after = r.seq.Int64
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read rows after %d: %w", s.after, err)
	}
	s.done = len(s.buf) < chunk
	return nil
}

// streamHeap orders streams by the sequence number of their next row.
type streamHeap []*rowStream

func (h streamHeap) Len() int { return len(h) }
func (h streamHeap) Less(i, j int) bool {
	return h[i].buf[h[i].next].seq.Int64 < h[j].buf[h[j].next].seq.Int64
}
func (h streamHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *streamHeap) Push(x any)   { *h = append(*h, x.(*rowStream)) }
func (h *streamHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

var _ = errors.Is
var _ = uuid.NewV7
var _ sql.NullInt64

// State is the replica's identity and clock as persisted in _replica.
type State struct {
	Node string
	HLC  syncproto.Timestamp
	Seq  int64
}

// Init makes sure the replica has its identity row, creating a node id
// (a UUIDv7) the first time, and returns it. The persisted clock is
// raised to the highest version held, so that a clock restored from an
// old state can never issue a version below one already written.
func Init(ctx context.Context, db *sql.DB) (State, error) {
	var st State
	err := db.QueryRowContext(ctx, "SELECT node, hlc, seq FROM _replica WHERE id = 1").Scan(&st.Node, &st.HLC, &st.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		id, err := uuid.NewV7()
		if err != nil {
			return st, fmt.Errorf("replica node id: %w", err)
		}
		// Servers started together on one database: the first insert
		// wins, the others read its row.
		if _, err := db.ExecContext(ctx, "INSERT INTO _replica (id, node) VALUES (1, ?) ON CONFLICT (id) DO NOTHING", id.String()); err != nil {
			return st, fmt.Errorf("replica init: %w", err)
		}
		if err := db.QueryRowContext(ctx, "SELECT node, hlc, seq FROM _replica WHERE id = 1").Scan(&st.Node, &st.HLC, &st.Seq); err != nil {
			return st, fmt.Errorf("replica init: %w", err)
		}
	} else if err != nil {
		return st, fmt.Errorf("replica init: %w", err)
	}
	// A replica written by the per-cell layout (_cells) is converted on
	// its first open by this version; the conversion raises the clock to
	// the newest version it met.
	if hlc, err := upgradeCells(ctx, db); err != nil {
		return st, err
	} else if hlc > st.HLC {
		st.HLC = hlc
		if _, err := db.ExecContext(ctx, "UPDATE _replica SET hlc = ? WHERE id = 1", int64(st.HLC)); err != nil {
			return st, fmt.Errorf("replica init: %w", err)
		}
	}
	return st, nil
}

// SaveClock persists the clock inside tx, never lowering it.
func SaveClock(ctx context.Context, tx *sql.Tx, t syncproto.Timestamp) error {
	if _, err := tx.ExecContext(ctx, "UPDATE _replica SET hlc = MAX(hlc, ?) WHERE id = 1", int64(t)); err != nil {
		return fmt.Errorf("save clock: %w", err)
	}
	return nil
}
