package replica

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/relais-numerique/relais/syncproto"
)

// upgradeCells converts a replica written by the per-cell layout (one
// _cells row per cell, values stored twice) into version records, in one
// transaction, and drops _cells. It returns the newest version met (0
// when there was nothing to convert).
//
// On a device, a cell whose version is one of its own writes still in
// its outbox gets
// that write's prev as its base version: the new layout keeps pending
// writes in the outbox only (see Options.Pending).
func upgradeCells(ctx context.Context, db *sql.DB) (syncproto.Timestamp, error) {
	if !tableExists(ctx, db, "_cells") {
		return 0, nil
	}
	schema, err := LoadSchema(ctx, db)
	if err != nil {
		return 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("convert cells: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	d, err := loadDict(ctx, tx)
	if err != nil {
		return 0, err
	}
	q := `SELECT c.tbl, c.pk, c.col, c.val, c.hlc, c.node, c.seq, c.owner, NULL, NULL FROM _cells c ORDER BY c.tbl, c.pk`
	if tableExists(ctx, tx, "_outbox") {
		// A device's outbox, one entry per row change by then (device
		// migration 00072 ran before this): its entries hold this
		// device's writes, and the prev of each of their columns.
		pending := `FROM _outbox o JOIN _tables t ON t.id = o.tbl
			WHERE o.vals IS NOT NULL AND t.name = c.tbl AND o.pk = c.pk AND o.hlc = c.hlc AND c.node = (SELECT node FROM _replica WHERE id = 1)
			AND json_type(o.vals, '$."' || c.col || '"') IS NOT NULL ORDER BY o.id LIMIT 1`
		q = `SELECT c.tbl, c.pk, c.col, c.val, c.hlc, c.node, c.seq, c.owner,
			(SELECT json_extract(o.prev, '$."' || c.col || '"[0]') ` + pending + `),
			(SELECT json_extract(o.prev, '$."' || c.col || '"[1]') ` + pending + `)
			FROM _cells c ORDER BY c.tbl, c.pk`
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("convert cells: %w", err)
	}
	defer rows.Close()
	st := newStmts(tx)
	defer st.close()
	w := &recordWriter{st: st}
	var newest int64
	var cur *record
	var curTable string
	var vals map[string]any
	var owner sql.NullString
	flush := func() error {
		if cur == nil {
			return nil
		}
		t := schema.Tables[curTable]
		for col, v := range vals {
			if col == syncproto.DeletedColumn {
				continue
			}
			if cur.deleted || t == nil || !isKnown(schema, curTable, col) {
				if v == nil {
					continue
				}
				if err := cur.setExtra(col, v); err != nil {
					return err
				}
			}
		}
		if owner.Valid {
			id, err := d.owner(ctx, owner.String)
			if err != nil {
				return err
			}
			cur.owner = sql.NullInt64{Int64: id, Valid: true}
		}
		return w.add(ctx, cur)
	}
	for rows.Next() {
		var table, pk, col, node string
		var val any
		var hlc int64
		var seq sql.NullInt64
		var own sql.NullString
		var prevHLC sql.NullInt64
		var prevNode sql.NullString
		if err := rows.Scan(&table, &pk, &col, &val, &hlc, &node, &seq, &own, &prevHLC, &prevNode); err != nil {
			return 0, fmt.Errorf("convert cells: %w", err)
		}
		if cur == nil || table != curTable || pk != cur.pk {
			if err := flush(); err != nil {
				return 0, err
			}
			tid, err := d.table(ctx, table)
			if err != nil {
				return 0, err
			}
			cur, curTable, vals, owner = &record{tbl: tid, pk: pk}, table, map[string]any{}, sql.NullString{}
		}
		newest = max(newest, hlc)
		val = sqlValue(val)
		vals[col] = val
		if own.Valid {
			owner = own
		}
		if col == syncproto.DeletedColumn {
			cur.deleted = isOne(val)
		}
		if prevHLC.Valid {
			// A pending write: the base is what it replaced.
			hlc, node = prevHLC.Int64, prevNode.String
			if hlc == 0 && node == "" {
				if _, err := d.column(ctx, cur.tbl, col); err != nil {
					return 0, err
				}
				continue
			}
		}
		bit, err := d.column(ctx, cur.tbl, col)
		if err != nil {
			return 0, err
		}
		nid, err := d.node(ctx, node)
		if err != nil {
			return 0, err
		}
		if seq.Valid {
			cur.seq = sql.NullInt64{Int64: max(cur.seq.Int64, seq.Int64), Valid: true}
		}
		cur.setClock(colClock{bit: bit, hlc: hlc, node: nid, seq: seq.Int64})
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("convert cells: %w", err)
	}
	rows.Close()
	if err := flush(); err != nil {
		return 0, err
	}
	if err := w.flush(ctx); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, "DROP TABLE _cells"); err != nil {
		return 0, fmt.Errorf("convert cells: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("convert cells: %w", err)
	}
	return syncproto.Timestamp(newest), nil
}

func tableExists(ctx context.Context, q DB, name string) bool {
	var n int
	err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", name).Scan(&n)
	return err == nil && n > 0
}
