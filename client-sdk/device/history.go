package device

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/relais-numerique/relais/replica"
	"slices"

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
func (r *Replica) checkHistory(ctx context.Context, resp *syncproto.SyncResponse) (bool, error) {
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
// own version, back in the outbox with that same version (prev unknown),
// except those already waiting there. The outbox's stamping trigger would
// give them a new version, newer than writes they lost to; it is set
// aside for the statement and put back as it was, within the
// transaction.
func (r *Replica) requeueOwnCells(ctx context.Context, tx *sql.Tx) error {
	var trigger string
	err := tx.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = '_outbox_stamp'").Scan(&trigger)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("requeue own writes: %w", err)
	}
	if trigger != "" {
		if _, err := tx.ExecContext(ctx, "DROP TRIGGER _outbox_stamp"); err != nil {
			return fmt.Errorf("requeue own writes: %w", err)
		}
	}
	var own []syncproto.Change
	err = replica.EachCell(ctx, tx, r.schema, func(c syncproto.Change, _ int64) error {
		if c.Version.Node == r.node {
			own = append(own, c)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("requeue own writes: %w", err)
	}
	slices.SortStableFunc(own, func(a, b syncproto.Change) int { return syncproto.Compare(a.Version, b.Version) })
	for _, c := range own {
		_, err = tx.ExecContext(ctx, `INSERT INTO _outbox (tbl, pk, col, val, hlc, node, prev_hlc, prev_node)
			SELECT ?, ?, ?, ?, ?, ?, 0, '' WHERE NOT EXISTS (SELECT 1 FROM _outbox o WHERE o.tbl = ? AND o.pk = ? AND o.col = ?)`,
			c.Table, c.PK, c.Column, c.Value, int64(c.Version.HLC), c.Version.Node, c.Table, c.PK, c.Column)
		if err != nil {
			return fmt.Errorf("requeue own writes: %w", err)
		}
	}
	if trigger != "" {
		if _, err := tx.ExecContext(ctx, trigger); err != nil {
			return fmt.Errorf("requeue own writes: restore the outbox trigger: %w", err)
		}
	}
	return nil
}
