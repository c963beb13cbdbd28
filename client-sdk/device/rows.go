package device

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// With one version record per row (package replica), a device's record
// holds the versions it received, and its own writes once acknowledged;
// a write still in the outbox is held there only. These functions are
// the device's side of that split.

// pendingVersions is replica.Options.Pending: the newest outbox entry of
// each cell of the rows, as the version the device holds when it beats
// the record's.
func pendingVersions(ctx context.Context, tx *sql.Tx, rows []syncproto.RowKey) (map[syncproto.RowKey]map[string]syncproto.Version, error) {
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM _outbox)").Scan(&n); err != nil || n == 0 {
		return nil, err
	}
	byTable := map[string][]string{}
	for _, k := range rows {
		byTable[k.Table] = append(byTable[k.Table], k.PK)
	}
	out := map[syncproto.RowKey]map[string]syncproto.Version{}
	for table, pks := range byTable {
		list, err := json.Marshal(pks)
		if err != nil {
			return nil, err
		}
		q, err := tx.QueryContext(ctx, `SELECT pk, col, hlc, node FROM _outbox
			WHERE tbl = ? AND pk IN (SELECT value FROM json_each(?)) ORDER BY id`, table, string(list))
		if err != nil {
			return nil, fmt.Errorf("pending writes of %s: %w", table, err)
		}
		for q.Next() {
			var pk, col string
			var v syncproto.Version
			var hlc int64
			if err := q.Scan(&pk, &col, &hlc, &v.Node); err != nil {
				q.Close()
				return nil, fmt.Errorf("pending writes of %s: %w", table, err)
			}
			v.HLC = syncproto.Timestamp(hlc)
			k := syncproto.RowKey{Table: table, PK: pk}
			m := out[k]
			if m == nil {
				m = map[string]syncproto.Version{}
				out[k] = m
			}
			if v.Beats(m[col]) {
				m[col] = v
			}
		}
		q.Close()
		if err := q.Err(); err != nil {
			return nil, fmt.Errorf("pending writes of %s: %w", table, err)
		}
	}
	return out, nil
}

// resolvePrev works out the prev of the outbox entries the stamping
// trigger left unresolved (prev_hlc = -1): the newest older entry of the
// same cell (a write of ours in flight), else the version the record
// holds, else none. It must run before anything changes the records
// (applying a page, an acknowledgement, a refusal) and before a batch is
// cut, so that prev is the version held when the write was made.
func resolvePrev(ctx context.Context, tx *sql.Tx) error {
	// An older entry of the same cell is one already cut (an unsent one
	// is folded into the newest), hence resolved: one statement for all.
	if _, err := tx.ExecContext(ctx, `UPDATE _outbox AS e SET (prev_hlc, prev_node) =
		(SELECT o.hlc, o.node FROM _outbox o WHERE o.tbl = e.tbl AND o.pk = e.pk AND o.col = e.col AND o.id < e.id AND o.prev_hlc != -1
		 ORDER BY o.id DESC LIMIT 1)
		WHERE e.prev_hlc = -1 AND EXISTS (SELECT 1 FROM _outbox o WHERE o.tbl = e.tbl AND o.pk = e.pk AND o.col = e.col AND o.id < e.id AND o.prev_hlc != -1)`); err != nil {
		return fmt.Errorf("resolve prev: %w", err)
	}
	rows, err := tx.QueryContext(ctx, "SELECT DISTINCT tbl, pk FROM _outbox WHERE prev_hlc = -1")
	if err != nil {
		return fmt.Errorf("resolve prev: %w", err)
	}
	byTable := map[string][]string{}
	for rows.Next() {
		var table, pk string
		if err := rows.Scan(&table, &pk); err != nil {
			rows.Close()
			return fmt.Errorf("resolve prev: %w", err)
		}
		byTable[table] = append(byTable[table], pk)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("resolve prev: %w", err)
	}
	for table, pks := range byTable {
		base, err := replica.Versions(ctx, tx, table, pks)
		if err != nil {
			return fmt.Errorf("resolve prev: %w", err)
		}
		// Rows the replica holds no version of (new rows, the common
		// case): prev is none, for all their entries at once.
		var fresh []string
		for _, pk := range pks {
			if _, ok := base[pk]; !ok {
				fresh = append(fresh, pk)
			}
		}
		for len(fresh) > 0 {
			part := fresh[:min(len(fresh), 500)]
			fresh = fresh[len(part):]
			list, err := json.Marshal(part)
			if err != nil {
				return fmt.Errorf("resolve prev: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE _outbox SET prev_hlc = 0, prev_node = ''
				WHERE prev_hlc = -1 AND tbl = ? AND pk IN (SELECT value FROM json_each(?))`, table, string(list)); err != nil {
				return fmt.Errorf("resolve prev: %w", err)
			}
		}
		for pk, cols := range base {
			for col, v := range cols {
				if _, err := tx.ExecContext(ctx, "UPDATE _outbox SET prev_hlc = ?, prev_node = ? WHERE prev_hlc = -1 AND tbl = ? AND pk = ? AND col = ?",
					int64(v.HLC), v.Node, table, pk, col); err != nil {
					return fmt.Errorf("resolve prev: %w", err)
				}
			}
			// Columns the record has no version of.
			if _, err := tx.ExecContext(ctx, "UPDATE _outbox SET prev_hlc = 0, prev_node = '' WHERE prev_hlc = -1 AND tbl = ? AND pk = ?", table, pk); err != nil {
				return fmt.Errorf("resolve prev: %w", err)
			}
		}
	}
	return nil
}

// acknowledge records the versions of an acknowledged batch's entries in
// the rows' records: they are now versions the server holds, and the
// entries leave the outbox. Refused rows were set aside already.
func (r *Replica) acknowledge(ctx context.Context, tx *sql.Tx, batchID string) error {
	rows, err := tx.QueryContext(ctx, "SELECT tbl, pk, col, hlc, node FROM _outbox WHERE batch = ? ORDER BY id", batchID)
	if err != nil {
		return fmt.Errorf("acknowledge batch: %w", err)
	}
	var changes []syncproto.Change
	for rows.Next() {
		var c syncproto.Change
		var hlc int64
		if err := rows.Scan(&c.Table, &c.PK, &c.Column, &hlc, &c.Version.Node); err != nil {
			rows.Close()
			return fmt.Errorf("acknowledge batch: %w", err)
		}
		c.Version.HLC = syncproto.Timestamp(hlc)
		c.Prev = c.Version
		changes = append(changes, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("acknowledge batch: %w", err)
	}
	if _, err := replica.Apply(ctx, tx, r.schema, changes, replica.Options{VersionsOnly: true}); err != nil {
		return fmt.Errorf("acknowledge batch: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM _outbox WHERE batch = ?", batchID); err != nil {
		return fmt.Errorf("drop acknowledged batch: %w", err)
	}
	return nil
}
