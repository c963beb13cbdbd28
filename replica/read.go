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
	// Owners holds, for ReadOwned, the owner tag of each cell of Changes
	// ("" for untagged cells): the owner of its row when it has one.
	Owners []string
	// Cursor is the sequence number to resume after.
	Cursor int64
	More   bool
}

// CellFilter decides whether a cell read for a pull is sent. It can also
// rewrite the change (to blank a column the reader may not see). Cells it
// drops still advance the cursor.
type CellFilter func(c *syncproto.Change) bool

// ReadPage returns up to limit cells with a sequence above cursor, in
// sequence order, skipping those the filter drops.
func ReadPage(ctx context.Context, q Queryer, cursor int64, limit int, keep CellFilter) (Page, error) {
	p := Page{Cursor: cursor}
	rows, err := q.QueryContext(ctx, `SELECT tbl, pk, col, val, hlc, node, seq FROM _cells
		WHERE seq > ? ORDER BY seq LIMIT ?`, cursor, limit+1)
	if err != nil {
		return p, fmt.Errorf("read page after %d: %w", cursor, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		if n == limit {
			p.More = true
			break
		}
		n++
		var c syncproto.Change
		var hlc, seq int64
		if err := rows.Scan(&c.Table, &c.PK, &c.Column, &c.Value, &hlc, &c.Version.Node, &seq); err != nil {
			return p, fmt.Errorf("read page after %d: %w", cursor, err)
		}
		c.Version.HLC = syncproto.Timestamp(hlc)
		p.Cursor = seq
		if b, ok := c.Value.([]byte); ok {
			c.Value = string(b)
		}
		if keep == nil || keep(&c) {
			p.Changes = append(p.Changes, c)
		}
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("read page after %d: %w", cursor, err)
	}
	return p, nil
}

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
		if _, err := db.ExecContext(ctx, "INSERT INTO _replica (id, node) VALUES (1, ?)", id.String()); err != nil {
			return st, fmt.Errorf("replica init: %w", err)
		}
		st.Node = id.String()
	} else if err != nil {
		return st, fmt.Errorf("replica init: %w", err)
	}
	var maxHLC sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT MAX(hlc) FROM _cells").Scan(&maxHLC); err != nil {
		return st, fmt.Errorf("replica init: %w", err)
	}
	if syncproto.Timestamp(maxHLC.Int64) > st.HLC {
		st.HLC = syncproto.Timestamp(maxHLC.Int64)
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

// ReadOwned is ReadPage restricted to the cells tagged with one of owners
// (see Options.Owners); the empty string stands for untagged cells (rows
// of tables without an owner). It reads each owner's cells by the owner
// index, in sequence order, and merges them: a device's pull then costs
// what that device may receive, not every cell the fleet wrote since its
// cursor. Limit and cursor mean what they mean for ReadPage, over the
// merged cells: every tagged cell with a sequence up to the returned
// cursor has been read. Page.Owners gives each kept cell's tag.
func ReadOwned(ctx context.Context, q Queryer, cursor int64, limit int, owners []string, keep CellFilter) (Page, error) {
	p := Page{Cursor: cursor}
	if limit <= 0 || len(owners) == 0 {
		return p, nil
	}
	owners = slices.Compact(slices.Sorted(slices.Values(owners)))
	// SQLite merges the owners' index ranges itself (one compound select
	// ordered by seq, see ownerStream.fill), so that a page reads the
	// cells it returns and no more: merging per-owner chunks here read
	// about 2.4 times the cells a coordinator's page kept, and ran a
	// query per chunk. Only past ownersPerQuery owners are several such
	// streams merged here, each fetching a chunk at a time; a stream that
	// runs dry doubles its next chunk.
	groups := (len(owners) + ownersPerQuery - 1) / ownersPerQuery
	chunk := limit + 1
	if groups > 1 {
		chunk = min(limit+1, max(64, limit/groups+1))
	}
	h := make(streamHeap, 0, groups)
	streams := make([]*ownerStream, 0, groups)
	defer func() {
		for _, s := range streams {
			s.release()
		}
	}()
	for g := range slices.Chunk(owners, ownersPerQuery) {
		s := &ownerStream{owners: g, after: cursor, chunk: chunk, max: limit + 1}
		streams = append(streams, s)
		if err := s.fill(ctx, q); err != nil {
			return p, err
		}
		if len(s.buf) > 0 {
			h = append(h, s)
		}
	}
	heap.Init(&h)
	// Sized for what the first fills brought (all of the page when one
	// query reads it): growing a page of ten thousand cells by appends
	// copied it over and over.
	held := 0
	for _, s := range h {
		held += len(s.buf)
	}
	p.Changes = make([]syncproto.Change, 0, min(limit, held))
	p.Owners = make([]string, 0, min(limit, held))
	n := 0
	for h.Len() > 0 {
		if n == limit {
			p.More = true
			break
		}
		s := h[0]
		c := &s.buf[s.next]
		s.next++
		n++
		p.Cursor = c.seq
		if keep == nil || keep(&c.Change) {
			p.Changes = append(p.Changes, c.Change)
			p.Owners = append(p.Owners, c.owner)
		}
		if s.next == len(s.buf) && !s.done {
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
	return p, nil
}

// ownersPerQuery bounds the arms of one compound select, well under
// SQLite's limit (SQLITE_MAX_COMPOUND_SELECT, 500 by default) and what a
// coordinator's team needs.
var ownersPerQuery = 64 // a variable for tests to exercise several streams

// Stream buffers are kept for the next pulls: a page-sized buffer is
// megabytes, and allocating and zeroing one for each pull was a large
// share of the server's CPU at 17:00, when a conseiller's pull asks for
// thousands of cells and finds a handful (BENCHMARKS.md, "Figures behind the code").
var streamBuffers sync.Pool

func takeBuffer(n int) []seqChange {
	if b, ok := streamBuffers.Get().(*[]seqChange); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]seqChange, 0, n)
}

// release gives the stream's buffer back, emptied so that it does not
// keep the page's values alive.
func (s *ownerStream) release() {
	if cap(s.buf) == 0 {
		return
	}
	clear(s.buf)
	b := s.buf[:0]
	s.buf = nil
	streamBuffers.Put(&b)
}

type seqChange struct {
	syncproto.Change
	seq   int64
	owner string
}

// ownerStream is some owners' cells above a sequence number, in sequence
// order, read ahead by chunks.
type ownerStream struct {
	owners []string
	after  int64 // the last sequence number fetched
	buf    []seqChange
	next   int  // the first cell of buf not yet merged
	done   bool // the last fetch came back short: nothing more
	chunk  int  // rows to fetch next, doubling up to max
	max    int
}

// ownersQuery merges the cells of owners in sequence order: SQLite runs a
// compound select ordered by a column every arm reads in index order as a
// merge of the arms, reading each only as far as the LIMIT needs. ?1 is
// the cursor, then come the owners other than "" (whose arm reads the
// untagged cells, by the same index), then the limit.
func ownersQuery(owners []string) string {
	var b strings.Builder
	n := 1
	for i, o := range owners {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		if o == "" {
			b.WriteString(`SELECT tbl, pk, col, val, hlc, node, seq, '' FROM _cells WHERE owner IS NULL AND seq > ?1`)
			continue
		}
		n++
		fmt.Fprintf(&b, `SELECT tbl, pk, col, val, hlc, node, seq, owner FROM _cells WHERE owner = ?%d AND seq > ?1`, n)
	}
	fmt.Fprintf(&b, " ORDER BY 7 LIMIT ?%d", n+1)
	return b.String()
}

func (s *ownerStream) fill(ctx context.Context, q Queryer) error {
	chunk := s.chunk
	s.chunk = min(2*s.chunk, s.max)
	args := make([]any, 0, len(s.owners)+2)
	args = append(args, s.after)
	for _, o := range s.owners {
		if o != "" {
			args = append(args, o)
		}
	}
	args = append(args, chunk)
	rows, err := q.QueryContext(ctx, ownersQuery(s.owners), args...)
	if err != nil {
		return fmt.Errorf("read cells of %d owners after %d: %w", len(s.owners), s.after, err)
	}
	defer rows.Close()
	if cap(s.buf) < chunk {
		s.buf = takeBuffer(chunk)
	}
	s.buf, s.next = s.buf[:0], 0
	var in interner
	for rows.Next() {
		s.buf = append(s.buf, seqChange{})
		c := &s.buf[len(s.buf)-1]
		var hlc int64
		if err := rows.Scan(&c.Table, &c.PK, &c.Column, &c.Value, &hlc, &c.Version.Node, &c.seq, &c.owner); err != nil {
			return fmt.Errorf("read cells of %d owners after %d: %w", len(s.owners), s.after, err)
		}
		c.Version.HLC = syncproto.Timestamp(hlc)
		if b, ok := c.Value.([]byte); ok {
			c.Value = string(b)
		}
		c.Table, c.Column, c.Version.Node, c.owner = in.get(c.Table), in.get(c.Column), in.get(c.Version.Node), in.get(c.owner)
		s.after = c.seq
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read cells of %d owners after %d: %w", len(s.owners), s.after, err)
	}
	s.done = len(s.buf) < chunk
	return nil
}

// interner shares one copy of the strings a page repeats on every cell
// (tables, columns, nodes, owners): the driver allocates each anew, and
// a page of ten thousand cells would otherwise keep forty thousand small
// strings alive until it is encoded.
type interner map[string]string

func (in *interner) get(s string) string {
	if *in == nil {
		*in = make(interner, 64)
	}
	if v, ok := (*in)[s]; ok {
		return v
	}
	(*in)[s] = s
	return s
}

// streamHeap orders streams by the sequence number of their next cell.
type streamHeap []*ownerStream

func (h streamHeap) Len() int           { return len(h) }
func (h streamHeap) Less(i, j int) bool { return h[i].buf[h[i].next].seq < h[j].buf[h[j].next].seq }
func (h streamHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *streamHeap) Push(x any)        { *h = append(*h, x.(*ownerStream)) }
func (h *streamHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}

// ReadCells returns the cells held for some columns of one row, with
// their versions, in the order of cols; a column with no cell is left
// out. The server answers a refused row with them, so that the device
// can put the row back as the server holds it.
func ReadCells(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, table, pk string, cols []string) ([]syncproto.Change, error) {
	out := make([]syncproto.Change, 0, len(cols))
	for _, col := range cols {
		c := syncproto.Change{Table: table, PK: pk, Column: col}
		var hlc int64
		err := q.QueryRowContext(ctx, "SELECT val, hlc, node FROM _cells WHERE tbl = ? AND pk = ? AND col = ?", table, pk, col).
			Scan(&c.Value, &hlc, &c.Version.Node)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read cell %s.%s of %s: %w", table, col, pk, err)
		}
		if raw, ok := c.Value.([]byte); ok {
			c.Value = string(raw)
		}
		c.Version.HLC = syncproto.Timestamp(hlc)
		out = append(out, c)
	}
	return out, nil
}
