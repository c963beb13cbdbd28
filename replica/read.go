package replica

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
