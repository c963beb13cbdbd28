package device

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// forgetRefused runs, inside the transaction that sets a refused batch
// aside, before its entries leave the outbox. The capture triggers wrote
// each refused change into _cells and the domain row when the application
// made it; left there, the refused version would keep beating the
// server's older versions of those cells for ever, and the replica would
// silently differ from the server (found by the reliability tests: an
// erased beneficiary's notes written offline kept their version on the
// tablet). So the cells still holding a refused version are dropped, the
// domain rows are rebuilt without them (or removed when nothing of them
// is left), and the device pulls everything again, its own cells
// included, to take the server's versions back.
func (r *Replica) forgetRefused(ctx context.Context, tx *sql.Tx, batchID string) error {
	rows, err := tx.QueryContext(ctx, `SELECT o.tbl, o.pk, o.col FROM _outbox o
		JOIN _cells c ON c.tbl = o.tbl AND c.pk = o.pk AND c.col = o.col AND c.hlc = o.hlc AND c.node = o.node
		WHERE o.batch = ? ORDER BY o.id`, batchID)
	if err != nil {
		return fmt.Errorf("forget refused cells: %w", err)
	}
	type cell struct{ tbl, pk, col string }
	var cells []cell
	for rows.Next() {
		var c cell
		if err := rows.Scan(&c.tbl, &c.pk, &c.col); err != nil {
			rows.Close()
			return fmt.Errorf("forget refused cells: %w", err)
		}
		cells = append(cells, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("forget refused cells: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE _replica SET applying = 1 WHERE id = 1"); err != nil {
		return fmt.Errorf("forget refused cells: %w", err)
	}
	touched := map[syncproto.RowKey]bool{}
	var order []syncproto.RowKey
	for _, c := range cells {
		if _, err := tx.ExecContext(ctx, "DELETE FROM _cells WHERE tbl = ? AND pk = ? AND col = ?", c.tbl, c.pk, c.col); err != nil {
			return fmt.Errorf("forget refused cell %s.%s: %w", c.tbl, c.col, err)
		}
		if _, known := r.schema.ColumnType(c.tbl, c.col); !known {
			continue
		}
		if c.col != "_deleted" {
			if _, err := tx.ExecContext(ctx, "UPDATE "+quoteIdent(c.tbl)+" SET "+quoteIdent(c.col)+" = NULL WHERE id = ?", c.pk); err != nil {
				return fmt.Errorf("forget refused cell %s.%s: %w", c.tbl, c.col, err)
			}
		}
		k := syncproto.RowKey{Table: c.tbl, PK: c.pk}
		if !touched[k] {
			touched[k] = true
			order = append(order, k)
		}
	}
	for _, k := range order {
		var left int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM _cells WHERE tbl = ? AND pk = ?", k.Table, k.PK).Scan(&left); err != nil {
			return fmt.Errorf("forget refused cells of %s %s: %w", k.Table, k.PK, err)
		}
		if left == 0 {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+quoteIdent(k.Table)+" WHERE id = ?", k.PK); err != nil {
				return fmt.Errorf("forget refused row %s %s: %w", k.Table, k.PK, err)
			}
			continue
		}
		if err := replica.Rematerialise(ctx, tx, r.schema, k.Table, k.PK); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE _replica SET applying = 0 WHERE id = 1"); err != nil {
		return fmt.Errorf("forget refused cells: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE _device SET cursor = 0, resync = 1 WHERE id = 1"); err != nil {
		return fmt.Errorf("forget refused cells: ask for a full pull: %w", err)
	}
	return nil
}

// resyncing reports whether the device is pulling everything again after
// a refusal (see forgetRefused).
func (r *Replica) resyncing(ctx context.Context) (bool, error) {
	var on bool
	if err := r.db.W.QueryRowContext(ctx, "SELECT resync FROM _device WHERE id = 1").Scan(&on); err != nil {
		return false, fmt.Errorf("sync: read resync flag: %w", err)
	}
	return on, nil
}
