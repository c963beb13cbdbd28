package device

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// checkHistory compares the server history an answer carries with the
// one this device last synced with. A different one means the server was
// restored from a backup: it may lack writes this device made (and had
// acknowledged) after the backup, and its sequence numbers went back, so
// the device's cursor points past its newest cells. Then, in one
// transaction, the device puts every cell it wrote itself, with the
// version it has, back in its outbox (the server's merge keeps only what
// it lacks), moves its cursor back to the last sequence the two
// histories share (0 when it cannot tell), and remembers the new
// history. resp is changed to match: that cursor, more to come, so the
// sync loop goes on from there. It returns whether that happened.
//
// The first history seen (a new device, or one that synced before
// histories existed) is only remembered.
func (r *Replica) checkHistory(ctx context.Context, resp *syncproto.SyncResponse, flush func() error) (bool, error) {
	if resp.History == "" {
		return false, nil // a server without histories
	}
	var known sql.NullString
	if err := r.db.R.QueryRowContext(ctx, "SELECT history FROM _device WHERE id = 1").Scan(&known); err != nil {
		return false, fmt.Errorf("sync: server history: %w", err)
	}
	if known.String == resp.History {
		return false, nil
	}
	changed := known.Valid && known.String != ""
	// A device that last synced with the history the backup was taken
	// from holds every cell up to the sequence the two histories share:
	// it pulls again from there. Any other history (restored twice, or
	// from an older backup than its own) shares nothing it can name.
	from := int64(0)
	if changed && resp.HistoryParent == known.String {
		from = resp.HistorySharedSeq
	}
	// The pages of an open pull group are committed first: they came
	// from the history known before, and the writer is needed here.
	if err := flush(); err != nil {
		return false, err
	}
	err := r.applyLocal(ctx, func(tx *sql.Tx) error {
		if changed {
			if err := r.requeueOwnCells(ctx, tx); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE _device SET cursor = MIN(cursor, ?) WHERE id = 1", from); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, "UPDATE _device SET history = ? WHERE id = 1", resp.History)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sync: server history changed: %w", err)
	}
	if changed {
		var cursor int64
		if err := r.db.R.QueryRowContext(ctx, "SELECT cursor FROM _device WHERE id = 1").Scan(&cursor); err != nil {
			return false, fmt.Errorf("sync: server history changed: %w", err)
		}
		resp.Cursor, resp.More = cursor, true
	}
	return changed, nil
}

// requeueOwnCells puts the cells this device wrote, and holds with its
// own version, back in the outbox with that same version (prev none),
// except those already waiting there: one frozen entry per row and
// version, in the order they were written.
func (r *Replica) requeueOwnCells(ctx context.Context, tx *sql.Tx) error {
	if err := r.freeze(ctx, tx, "", nil); err != nil {
		return fmt.Errorf("requeue own writes: %w", err)
	}
	type cell struct{ table, pk, col string }
	waiting := map[cell]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT t.name, o.pk, k.key FROM _outbox o JOIN _tables t ON t.id = o.tbl, json_each(o.vals) k WHERE o.vals IS NOT NULL")
	if err != nil {
		return fmt.Errorf("requeue own writes: %w", err)
	}
	for rows.Next() {
		var c cell
		if err := rows.Scan(&c.table, &c.pk, &c.col); err != nil {
			rows.Close()
			return fmt.Errorf("requeue own writes: %w", err)
		}
		waiting[c] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("requeue own writes: %w", err)
	}
	var own []syncproto.Change
	err = replica.EachCell(ctx, tx, r.schema, func(c syncproto.Change, _ int64) error {
		if c.Version.Node == r.node && !waiting[cell{c.Table, c.PK, c.Column}] {
			own = append(own, c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("requeue own writes: %w", err)
	}
	slices.SortStableFunc(own, func(a, b syncproto.Change) int {
		if c := syncproto.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Table+"\x00"+a.PK, b.Table+"\x00"+b.PK)
	})
	for i := 0; i < len(own); {
		j := i + 1
		for j < len(own) && own[j].Row() == own[i].Row() && own[j].Version == own[i].Version {
			j++
		}
		var pairs []string
		args := []any{own[i].Table, own[i].PK, int64(own[i].Version.HLC)}
		prev := map[string][2]any{}
		for _, c := range own[i:j] {
			pairs = append(pairs, "?, ?")
			args = append(args, c.Column, c.Value)
			prev[c.Column] = [2]any{0, ""}
		}
		pj, err := json.Marshal(prev)
		if err != nil {
			return fmt.Errorf("requeue own writes: %w", err)
		}
		args = append(args, string(pj))
		if _, err := tx.ExecContext(ctx, `INSERT INTO _outbox (tbl, pk, mask, hlc, vals, prev)
			VALUES ((SELECT id FROM _tables WHERE name = ?), ?, 0, ?, json_object(`+strings.Join(pairs, ", ")+`), ?)`, args...); err != nil {
			return fmt.Errorf("requeue own writes: %w", err)
		}
		i = j
	}
	return nil
}
