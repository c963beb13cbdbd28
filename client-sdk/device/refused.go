package device

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// A refused change is never dropped silently, nor left to block the
// outbox. The device chose to put the row back as the server holds it and
// to keep the conseillère's refused values beside it, in _rejected:
//
//   - the replica stays a faithful copy of the server (no refused version
//     keeps beating the server's older ones, which the server would never
//     send again), so replicas converge whatever she does next;
//   - her values are listed with the server's French reason (Rejected,
//     `relais device rejected`), and she either sends the row again once
//     fixed (Retry), as a new write, or gives it up (Dismiss), and the
//     server's version, already in place, stays.
//
// The server sends its version of each refused cell with the refusal
// (syncproto.Refusal.Current), so nothing else is downloaded, and the pull
// cursor does not move back.

// setAside handles the rows the server refused in an acknowledged batch,
// inside the transaction that applies the answer (capture triggers
// silenced): every change the batch made to a refused row moves from the
// outbox to _rejected, and each refused cell still holding her refused
// version is put back as the server holds it, or dropped when the server
// holds nothing she may see. A cell she wrote again since the batch left
// keeps her newer write, which goes out with the next batch, stamped as
// following the server's version. It returns the number of changes set
// aside.
func (r *Replica) setAside(ctx context.Context, tx *sql.Tx, batchID string, refused []syncproto.Refusal, at time.Time) (int, error) {
	n := 0
	for _, rf := range refused {
		moved, err := r.setAsideRow(ctx, tx, batchID, rf, at)
		if err != nil {
			return n, fmt.Errorf("set refused row %s %s aside: %w", rf.Table, rf.PK, err)
		}
		n += moved
	}
	return n, nil
}

func (r *Replica) setAsideRow(ctx context.Context, tx *sql.Tx, batchID string, rf syncproto.Refusal, at time.Time) (int, error) {
	current := map[string]syncproto.Change{}
	for _, c := range rf.Current {
		if c.Table != rf.Table || c.PK != rf.PK {
			return 0, fmt.Errorf("server sent a cell of %s %s with the refusal of %s %s", c.Table, c.PK, rf.Table, rf.PK)
		}
		if _, known := r.schema.ColumnType(c.Table, c.Column); known {
			if err := r.schema.Check(&c); err != nil {
				return 0, fmt.Errorf("server sent an invalid cell: %w", err)
			}
		} else if num, ok := c.Value.(json.Number); ok {
			c.Value = num.String()
		}
		current[c.Column] = c
	}
	entries, err := readChanges(ctx, tx, "o.batch = ?1 AND "+rowCond, batchID, rf.Table, rf.PK)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, r.outbox.Reject, batchID, rf.Table, rf.PK,
		string(rf.Code), rf.Reason, rf.Rule, at.UnixMilli()); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, r.outbox.DropRow, batchID, rf.Table, rf.PK); err != nil {
		return 0, err
	}
	// Writes made since the batch left follow her refused version,
	// which the server never took: the oldest of them now follows the
	// server's (applyAnswer froze them, so each one's prev is its own).
	// The cells not written again since are put back as the server
	// holds them.
	var cols []string
	var cells []syncproto.Change
	for _, e := range entries {
		if slices.Contains(cols, e.Column) {
			continue
		}
		cur := current[e.Column]
		res, err := tx.ExecContext(ctx, r.outbox.Reprev, rf.Table, rf.PK, e.Column, int64(cur.Version.HLC), cur.Version.Node)
		if err != nil {
			return 0, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			continue // written again since: her newer write stands
		}
		cols = append(cols, e.Column)
		if c, has := current[e.Column]; has {
			cells = append(cells, c)
		}
	}
	if len(cols) > 0 {
		var left bool
		if err := tx.QueryRowContext(ctx, r.outbox.RowPending, rf.Table, rf.PK).Scan(&left); err != nil {
			return 0, err
		}
		if err := replica.PutBack(ctx, tx, r.schema, rf.Table, rf.PK, cells, cols, left); err != nil {
			return 0, err
		}
	}
	return len(entries), nil
}

// setAsideBatch handles a batch refused whole for its content (a table
// the server does not know, or, from an older server, any refusal): each
// of its rows is set aside as if refused alone, with the batch's error
// as the reason and no server version to put back (the server has none
// it would send: its answer carried none).
func (r *Replica) setAsideBatch(ctx context.Context, tx *sql.Tx, batch *syncproto.Batch, pe *syncproto.Error, at time.Time) (int, error) {
	if err := r.freeze(ctx, tx, "", rowKeys(batch.Changes)); err != nil {
		return 0, err
	}
	var refused []syncproto.Refusal
	seen := map[syncproto.RowKey]bool{}
	for _, c := range batch.Changes {
		k := c.Row()
		if seen[k] {
			continue
		}
		seen[k] = true
		rule, _ := pe.Details[syncproto.DetailRule].(string)
		refused = append(refused, syncproto.Refusal{Table: c.Table, PK: c.PK, Code: pe.Code, Reason: pe.Message, Rule: rule})
	}
	n, err := r.setAside(ctx, tx, batch.ID, refused, at)
	if err != nil {
		return n, err
	}
	// Entries of rows the batch no longer names (none, normally).
	_, err = tx.ExecContext(ctx, r.outbox.Ack, batch.ID)
	return n, err
}

// resyncing reports whether the device is finishing a full pull that an
// older version of the SDK started after a refusal (migration 00041).
// This version never starts one.
func (r *Replica) resyncing(ctx context.Context, q replica.DB) (bool, error) {
	var on bool
	if err := q.QueryRowContext(ctx, "SELECT resync FROM _device WHERE id = 1").Scan(&on); err != nil {
		return false, fmt.Errorf("sync: read resync flag: %w", err)
	}
	return on, nil
}

// Rejection is one change the server refused, kept on the device with
// the conseillère's value and the server's reason.
type Rejection struct {
	ID     int64
	Table  string
	PK     string
	Column string
	Value  any    // her value, as she wrote it
	Code   string // the server's code (forbidden_scope, invalid_row, bad_value...)
	Reason string // in French
	Rule   string // the domain rule broken, for invalid_row
	At     time.Time
}

// Rejected lists the refused changes, oldest first. Changes refused
// together (one row of one batch) share Table, PK and At.
func (r *Replica) Rejected(ctx context.Context) ([]Rejection, error) {
	rows, err := r.db.W.QueryContext(ctx, "SELECT id, tbl, pk, col, val, code, message, rule, rejected_at FROM _rejected ORDER BY rejected_at, id")
	if err != nil {
		return nil, fmt.Errorf("rejected changes: %w", err)
	}
	defer rows.Close()
	var out []Rejection
	for rows.Next() {
		var j Rejection
		var at int64
		if err := rows.Scan(&j.ID, &j.Table, &j.PK, &j.Column, &j.Value, &j.Code, &j.Reason, &j.Rule, &at); err != nil {
			return nil, fmt.Errorf("rejected changes: %w", err)
		}
		if raw, ok := j.Value.([]byte); ok {
			j.Value = string(raw)
		}
		j.At = time.UnixMilli(at)
		out = append(out, j)
	}
	return out, rows.Err()
}

// ErrNoRejection answers Retry and Dismiss for an id that names no
// refused change.
var ErrNoRejection = errors.New("aucune modification refusée ne porte ce numéro (voir relais device rejected)")

// rejectedRow returns the row the refused change id belongs to, and her
// refused values for it (column -> value; the newest when a cell was
// refused twice).
func rejectedRow(ctx context.Context, tx *sql.Tx, id int64) (table, pk string, values map[string]any, err error) {
	err = tx.QueryRowContext(ctx, "SELECT tbl, pk FROM _rejected WHERE id = ?", id).Scan(&table, &pk)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil, ErrNoRejection
	}
	if err != nil {
		return "", "", nil, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT col, val FROM _rejected WHERE tbl = ? AND pk = ? ORDER BY id", table, pk)
	if err != nil {
		return "", "", nil, err
	}
	defer rows.Close()
	values = map[string]any{}
	for rows.Next() {
		var col string
		var val any
		if err := rows.Scan(&col, &val); err != nil {
			return "", "", nil, err
		}
		if raw, ok := val.([]byte); ok {
			val = string(raw)
		}
		values[col] = val
	}
	return table, pk, values, rows.Err()
}

// Retry writes again the row the refused change id belongs to, with her
// refused values for it, changed by fix (column -> value) where she
// corrected them, as an ordinary local write: the device's checks judge
// it now (an error says in French what is still wrong, and nothing is
// written), and the next Sync sends it. The row's refused changes leave
// the list.
func (r *Replica) Retry(ctx context.Context, id int64, fix map[string]any) error {
	err := r.db.Write(ctx, func(tx *sql.Tx) error {
		table, pk, values, err := rejectedRow(ctx, tx, id)
		if err != nil {
			return err
		}
		t, ok := r.schema.Tables[table]
		if !ok {
			return fmt.Errorf("la table %s n'existe pas sur cet appareil", table)
		}
		for col, v := range fix {
			if _, known := t.Columns[col]; !known {
				return fmt.Errorf("la table %s n'a pas de colonne %s", table, col)
			}
			values[col] = v
		}
		var exists bool
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+quoteIdent(table)+" WHERE id = ?)", pk).Scan(&exists); err != nil {
			return err
		}
		deleted := fmt.Sprint(values[syncproto.DeletedColumn]) == "1"
		delete(values, syncproto.DeletedColumn)
		var cols []string
		var args []any
		for col := range values {
			if _, known := t.Columns[col]; known {
				cols = append(cols, col)
			}
		}
		slices.Sort(cols)
		for _, c := range cols {
			args = append(args, values[c])
		}
		switch {
		case deleted:
			if exists {
				_, err = tx.ExecContext(ctx, "DELETE FROM "+quoteIdent(table)+" WHERE id = ?", pk)
			}
		case exists && len(cols) > 0:
			set := make([]string, len(cols))
			for i, c := range cols {
				set[i] = quoteIdent(c) + " = ?"
			}
			_, err = tx.ExecContext(ctx, "UPDATE "+quoteIdent(table)+" SET "+strings.Join(set, ", ")+" WHERE id = ?", append(args, pk)...)
		case !exists:
			names := []string{"id"}
			for _, c := range cols {
				names = append(names, quoteIdent(c))
			}
			_, err = tx.ExecContext(ctx, "INSERT INTO "+quoteIdent(table)+" ("+strings.Join(names, ", ")+") VALUES (?"+strings.Repeat(", ?", len(cols))+")",
				append([]any{pk}, args...)...)
		}
		if err != nil {
			return fmt.Errorf("la fiche est encore refusée : %w", err)
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM _rejected WHERE tbl = ? AND pk = ?", table, pk)
		return err
	})
	if err != nil {
		return fmt.Errorf("retry refused change %d: %w", id, err)
	}
	return nil
}

// Dismiss gives up the row the refused change id belongs to: her refused
// values for it leave the list, and the server's version, which the
// device put back when the refusal arrived, stays.
func (r *Replica) Dismiss(ctx context.Context, id int64) error {
	err := r.db.Write(ctx, func(tx *sql.Tx) error {
		table, pk, _, err := rejectedRow(ctx, tx, id)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM _rejected WHERE tbl = ? AND pk = ?", table, pk)
		return err
	})
	if err != nil {
		return fmt.Errorf("dismiss refused change %d: %w", id, err)
	}
	return nil
}
