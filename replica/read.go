package replica

import (
	"container/heap"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/relais-numerique/relais/syncproto"
)

// Page is one page of cells read by sequence number.
type Page struct {
	Changes []syncproto.Change
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
// cursor has been read.
func ReadOwned(ctx context.Context, q Queryer, cursor int64, limit int, owners []string, keep CellFilter) (Page, error) {
	p := Page{Cursor: cursor}
	if limit <= 0 || len(owners) == 0 {
		return p, nil
	}
	// Each owner's cells are fetched a chunk at a time, so that a
	// coordinator following many people reads about a page in all, not a
	// page per person; a stream that runs dry doubles its next chunk, so
	// that the few people who wrote most of a page cost few queries.
	chunk := min(limit+1, max(64, limit/len(owners)+1))
	h := make(streamHeap, 0, len(owners))
	for _, o := range slices.Compact(slices.Sorted(slices.Values(owners))) {
		s := &ownerStream{owner: o, after: cursor, chunk: chunk, max: limit + 1}
		if err := s.fill(ctx, q); err != nil {
			return p, err
		}
		if len(s.buf) > 0 {
			h = append(h, s)
		}
	}
	heap.Init(&h)
	n := 0
	for h.Len() > 0 {
		if n == limit {
			p.More = true
			break
		}
		s := h[0]
		c := s.buf[0]
		s.buf = s.buf[1:]
		n++
		p.Cursor = c.seq
		if keep == nil || keep(&c.Change) {
			p.Changes = append(p.Changes, c.Change)
		}
		if len(s.buf) == 0 && !s.done {
			if err := s.fill(ctx, q); err != nil {
				return p, err
			}
		}
		if len(s.buf) == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return p, nil
}

type seqChange struct {
	syncproto.Change
	seq int64
}

// ownerStream is one owner's cells above a sequence number, read ahead by
// chunks.
type ownerStream struct {
	owner string
	after int64 // the last sequence number fetched
	buf   []seqChange
	done  bool // the last fetch came back short: nothing more
	chunk int  // rows to fetch next, doubling up to max
	max   int
}

func (s *ownerStream) fill(ctx context.Context, q Queryer) error {
	chunk := s.chunk
	s.chunk = min(2*s.chunk, s.max)
	query := `SELECT tbl, pk, col, val, hlc, node, seq FROM _cells WHERE owner = ? AND seq > ? ORDER BY seq LIMIT ?`
	args := []any{s.owner, s.after, chunk}
	if s.owner == "" {
		query = `SELECT tbl, pk, col, val, hlc, node, seq FROM _cells WHERE owner IS NULL AND seq > ? ORDER BY seq LIMIT ?`
		args = args[1:]
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read cells of %q after %d: %w", s.owner, s.after, err)
	}
	defer rows.Close()
	s.buf = s.buf[:0]
	for rows.Next() {
		var c seqChange
		var hlc int64
		if err := rows.Scan(&c.Table, &c.PK, &c.Column, &c.Value, &hlc, &c.Version.Node, &c.seq); err != nil {
			return fmt.Errorf("read cells of %q after %d: %w", s.owner, s.after, err)
		}
		c.Version.HLC = syncproto.Timestamp(hlc)
		if b, ok := c.Value.([]byte); ok {
			c.Value = string(b)
		}
		s.buf = append(s.buf, c)
		s.after = c.seq
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read cells of %q after %d: %w", s.owner, s.after, err)
	}
	s.done = len(s.buf) < chunk
	return nil
}

// streamHeap orders streams by the sequence number of their next cell.
type streamHeap []*ownerStream

func (h streamHeap) Len() int           { return len(h) }
func (h streamHeap) Less(i, j int) bool { return h[i].buf[0].seq < h[j].buf[0].seq }
func (h streamHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *streamHeap) Push(x any)        { *h = append(*h, x.(*ownerStream)) }
func (h *streamHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}
