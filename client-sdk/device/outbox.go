package device

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// The outbox holds one entry per row change (device migration 00072):
// the table's number, the row's id, the columns changed as bits of mask
// (bit 0 the tombstone, bit i the table's i-th synced column in
// declaration order, see captureColumns), and the clock reading of the
// newest write folded in. Every change of an entry is stamped (hlc, the
// device's node): the outbox only ever holds this device's writes.
//
// An entry is open until frozen: the capture triggers upsert a row's
// open entry (one per row, a partial unique index), so that a local
// write costs one clock tick and one upsert, whatever the number of
// columns it sets. Freezing writes the entry's values (vals, JSON, read
// from the domain row, or from the row's record when it is deleted) and
// what its prev is made of: prev, the versions known without the record
// (an older pending entry of the same row holding the column), and base,
// a copy of the record's clocks for the others. It happens when a batch
// is cut and before a pulled page touching the row is applied, in the
// same transaction: a batch sent again is then the same changes, and a
// value received from elsewhere never slips into a pending write.
//
// The statements are OutboxSQL, which SchemaSQL serves so that the web
// SDK runs the same text (client-sdk/web); the Go SDK runs them from
// here. Only the decoding of base (packed clocks, package replica) is
// each SDK's own.

// OutboxSQL is the outbox's SQL, generated from the schema. Parameters
// are numbered (?1, ?2); every statement runs in the caller's
// transaction.
type OutboxSQL struct {
	// Columns maps each synced table to its mask positions: Columns[t][i]
	// is the column of bit i (index 0 is the tombstone, _deleted).
	Columns map[string][]string `json:"columns"`
	// Freeze maps each synced table to the statement freezing its open
	// entries of batch ?1 (NULL: any) whose row id is in the JSON array
	// ?2 (NULL: any). Run it for every table, then FreezePrev.
	Freeze map[string]string `json:"freeze"`
	// FreezePrev completes the entries just frozen: base and prev.
	FreezePrev string `json:"freeze_prev"`
	// InFlight returns the oldest batch already cut (to be sent again
	// as it is), or no row.
	InFlight string `json:"in_flight"`
	// Cut gives the batch id ?1 to the oldest unsent entries holding
	// about ?2 changes (at least one entry), and to every other unsent
	// entry of their rows, so that a row travels whole.
	Cut string `json:"cut"`
	// Uncut takes the batch id ?1 back from its entries.
	Uncut string `json:"uncut"`
	// BatchChanges returns the number of changes of batch ?1.
	BatchChanges string `json:"batch_changes"`
	// Read returns the changes of batch ?1, one row per change: tbl
	// (the table's name), pk, col, val, hlc, node, prev_hlc, prev_node,
	// base, entry (the entry's id); prev_hlc NULL says the prev is the column's version in base
	// (the packed clocks of _rows), none when base has none.
	Read string `json:"read"`
	// ReadAll is Read for every frozen entry (restamp, Pending).
	ReadAll string `json:"read_all"`
	// Ack deletes the entries of batch ?1, once their versions were
	// recorded in the rows' records.
	Ack string `json:"ack"`
	// Pending returns the number of changes waiting.
	Pending string `json:"pending"`
	// Reject copies the changes of batch ?1 to row ?3 of table ?2 into
	// _rejected, one row per change, with the server's code ?4, French
	// reason ?5, rule ?6 and the time ?7 (Unix milliseconds).
	Reject string `json:"reject"`
	// DropRow deletes the entries of batch ?1 to row ?3 of table ?2.
	DropRow string `json:"drop_row"`
	// Reprev makes the oldest pending entry of row ?2 of table ?1 that
	// changes column ?3 follow the version (?4 hlc, ?5 node) instead:
	// the server's, after it refused the write that entry followed.
	// changes() says whether there was one (the column was written
	// again since the refused batch).
	Reprev string `json:"reprev"`
	// RowPending returns 1 when row ?2 of table ?1 has an entry left.
	RowPending string `json:"row_pending"`
	// Held returns pk, col, hlc, node of the frozen entries of table ?1
	// whose row id is in the JSON array ?2, oldest first: the versions of
	// the device's pending writes, as the merge of a page must hold them
	// (freeze the page's rows first).
	Held string `json:"held"`
}

// captureColumns reads each synced table's columns in declaration order:
// the mask positions. A migration only adds columns (docs/DESIGN.md,
// invariant 11), and an added column comes last, so a column keeps its
// position through every migration and an entry captured before one is
// read right after it.
func captureColumns(ctx context.Context, q replica.Queryer, schema *syncproto.Schema) (map[string][]string, error) {
	out := map[string][]string{}
	for _, name := range schema.TableNames() {
		rows, err := q.QueryContext(ctx, "SELECT name FROM pragma_table_info(?) ORDER BY cid", name)
		if err != nil {
			return nil, fmt.Errorf("capture columns of %s: %w", name, err)
		}
		cols := []string{syncproto.DeletedColumn}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return nil, fmt.Errorf("capture columns of %s: %w", name, err)
			}
			if _, synced := schema.Tables[name].Columns[c]; synced {
				cols = append(cols, c)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("capture columns of %s: %w", name, err)
		}
		// Bit 63 would be the sign: a table that wide is refused rather
		// than captured wrongly.
		if len(cols) > 63 {
			return nil, fmt.Errorf("capture columns of %s: %d columns, at most 62 can be synced", name, len(cols)-1)
		}
		out[name] = cols
	}
	return out, nil
}

// jsonKey is the JSON path of a column's key in vals or prev.
func jsonKey(col string) string { return `$."` + col + `"` }

// tableID is the SQL reading a table's number: the number is the
// replica's own, and the same text must serve every replica.
func tableID(table string) string {
	return fmt.Sprintf("(SELECT id FROM _tables WHERE name = %s)", quoteLiteral(table))
}

// outboxNode is the node of every outbox entry.
const outboxNode = "(SELECT node FROM _replica WHERE id = 1)"

// outboxSQL generates the statements for the tables' mask positions.
func outboxSQL(columns map[string][]string) *OutboxSQL {
	o := &OutboxSQL{Columns: columns, Freeze: map[string]string{}}
	widest := 1
	for table, cols := range columns {
		widest = max(widest, len(cols))
		obj := []string{quoteLiteral(syncproto.DeletedColumn), "d.id IS NULL"}
		var drop []string
		for i, c := range cols {
			if i > 0 {
				obj = append(obj, quoteLiteral(c),
					fmt.Sprintf("CASE WHEN d.id IS NULL THEN r.extra ->> %s ELSE d.%s END", quoteLiteral(jsonKey(c)), quoteIdent(c)))
			}
			// '$._' names no column: removing it leaves vals as it is.
			drop = append(drop, fmt.Sprintf("CASE WHEN _outbox.mask & %d THEN '$._' ELSE %s END", uint64(1)<<i, quoteLiteral(jsonKey(c))))
		}
		o.Freeze[table] = fmt.Sprintf(`UPDATE _outbox SET vals = (SELECT json_remove(json_object(%s), %s)
    FROM (SELECT 1) LEFT JOIN %s d ON d.id = _outbox.pk
    LEFT JOIN _rows r ON d.id IS NULL AND r.tbl = _outbox.tbl AND r.pk = %s)
WHERE vals IS NULL AND tbl = %s AND (?1 IS NULL OR batch = ?1) AND (?2 IS NULL OR pk IN (SELECT value FROM json_each(?2)))`,
			strings.Join(obj, ", "), strings.Join(drop, ", "), quoteIdent(table), replica.PKSQL("_outbox.pk"), tableID(table))
	}
	// An older entry of a row is frozen: the open one is the newest.
	older := "o.vals IS NOT NULL AND o.tbl = _outbox.tbl AND o.pk = _outbox.pk AND o.id < _outbox.id"
	o.FreezePrev = fmt.Sprintf(`UPDATE _outbox SET
    base = (SELECT r.clocks FROM _rows r WHERE r.tbl = _outbox.tbl AND r.pk = %s),
    prev = CASE WHEN NOT EXISTS (SELECT 1 FROM _outbox o WHERE %s) THEN '{}' ELSE
        (SELECT json_group_object(k.key, json_array(k.hlc, %s)) FROM
            (SELECT v.key, (SELECT o.hlc FROM _outbox o WHERE %s AND json_type(o.vals, '$."' || v.key || '"') IS NOT NULL
                ORDER BY o.id DESC LIMIT 1) AS hlc FROM json_each(_outbox.vals) v) k
         WHERE k.hlc IS NOT NULL) END
WHERE vals IS NOT NULL AND prev IS NULL`, replica.PKSQL("_outbox.pk"), older, outboxNode, older)
	o.InFlight = "SELECT batch FROM _outbox WHERE batch IS NOT NULL ORDER BY batch LIMIT 1"
	n := "CASE WHEN vals IS NULL THEN " + popcount("mask", widest) + " ELSE (SELECT COUNT(*) FROM json_each(vals)) END"
	o.Cut = fmt.Sprintf(`UPDATE _outbox SET batch = ?1 WHERE batch IS NULL AND (tbl, pk) IN
    (SELECT tbl, pk FROM (SELECT tbl, pk, id, SUM(%s) OVER (ORDER BY id) AS upto, %s AS n FROM _outbox WHERE batch IS NULL)
     WHERE upto - n < ?2 OR upto = n)`, n, n)
	o.Uncut = "UPDATE _outbox SET batch = NULL WHERE batch = ?1"
	o.BatchChanges = "SELECT COALESCE(SUM(" + n + "), 0) FROM _outbox WHERE batch = ?1"
	o.Read = readSQL("o.batch = ?1")
	o.ReadAll = readSQL("1")
	o.Ack = "DELETE FROM _outbox WHERE batch = ?1"
	o.Reject = fmt.Sprintf(`INSERT INTO _rejected (tbl, pk, col, val, hlc, node, code, message, rule, rejected_at)
SELECT ?2, o.pk, k.key, k.value, o.hlc, %s, ?4, ?5, ?6, ?7 FROM _outbox o, json_each(o.vals) k
WHERE o.vals IS NOT NULL AND o.batch = ?1 AND %s ORDER BY o.id, k.key`, outboxNode, rowCond)
	o.DropRow = "DELETE FROM _outbox AS o WHERE o.batch = ?1 AND " + rowCond
	row := "o.tbl = (SELECT id FROM _tables WHERE name = ?1) AND o.pk = ?2"
	o.Reprev = `UPDATE _outbox SET prev = json_set(COALESCE(prev, '{}'), '$."' || ?3 || '"', json_array(?4, ?5))
WHERE id = (SELECT o.id FROM _outbox o WHERE o.vals IS NOT NULL AND ` + row + ` AND json_type(o.vals, '$."' || ?3 || '"') IS NOT NULL
    ORDER BY o.id LIMIT 1)`
	// Two probes, one per partial index on the outbox's rows.
	o.RowPending = "SELECT EXISTS (SELECT 1 FROM _outbox o WHERE o.vals IS NOT NULL AND " + row + ") OR EXISTS (SELECT 1 FROM _outbox o WHERE o.vals IS NULL AND " + row + ")"
	o.Pending = "SELECT COALESCE(SUM(" + n + "), 0) FROM _outbox"
	o.Held = fmt.Sprintf(`SELECT o.pk, k.key, o.hlc, %s FROM _outbox o, json_each(o.vals) k
WHERE o.vals IS NOT NULL AND o.tbl = (SELECT id FROM _tables WHERE name = ?1) AND o.pk IN (SELECT value FROM json_each(?2))
ORDER BY o.id`, outboxNode)
	return o
}

// rowCond selects the outbox entries of one row (?2 table name, ?3 id).
const rowCond = "o.tbl = (SELECT id FROM _tables WHERE name = ?2) AND o.pk = ?3"

// readSQL reads the changes of the frozen entries where cond holds.
func readSQL(cond string) string {
	prev := `json_extract(o.prev, '$."' || k.key || '"[%d]')`
	return fmt.Sprintf(`SELECT t.name AS tbl, o.pk, k.key AS col, k.value AS val, o.hlc, %s AS node,
    %s AS prev_hlc, %s AS prev_node, o.base, o.id AS entry
FROM _outbox o JOIN _tables t ON t.id = o.tbl, json_each(o.vals) k
WHERE o.vals IS NOT NULL AND %s
ORDER BY o.id, k.key`, outboxNode, fmt.Sprintf(prev, 0), fmt.Sprintf(prev, 1), cond)
}

// popcount is the SQL counting the bits set among the first n of col.
func popcount(col string, n int) string {
	terms := make([]string, n)
	for i := range terms {
		terms[i] = fmt.Sprintf("((%s >> %d) & 1)", col, i)
	}
	return "(" + strings.Join(terms, " + ") + ")"
}

// freeze freezes the open entries of batch (any when empty) whose rows
// are among keys (any when nil), then completes them (FreezePrev).
func (r *Replica) freeze(ctx context.Context, tx *sql.Tx, batch string, keys []syncproto.RowKey) error {
	var open bool
	if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM _outbox WHERE vals IS NULL)").Scan(&open); err != nil {
		return fmt.Errorf("freeze outbox entries: %w", err)
	}
	if !open {
		return nil // nothing open, hence nothing half frozen either
	}
	var b any
	if batch != "" {
		b = batch
	}
	byTable := map[string]any{}
	if keys == nil {
		for _, table := range r.schema.TableNames() {
			byTable[table] = nil
		}
	} else {
		pks := map[string][]string{}
		for _, k := range keys {
			pks[k.Table] = append(pks[k.Table], k.PK)
		}
		for table, list := range pks {
			js, err := json.Marshal(list)
			if err != nil {
				return fmt.Errorf("freeze outbox entries of %s: %w", table, err)
			}
			byTable[table] = string(js)
		}
	}
	for table, list := range byTable {
		stmt, ok := r.outbox.Freeze[table]
		if !ok {
			continue // a table this replica does not sync has no entries
		}
		if _, err := tx.ExecContext(ctx, stmt, b, list); err != nil {
			return fmt.Errorf("freeze outbox entries of %s: %w", table, err)
		}
	}
	if _, err := tx.ExecContext(ctx, r.outbox.FreezePrev); err != nil {
		return fmt.Errorf("freeze outbox entries: prev: %w", err)
	}
	return nil
}

// pendingChanges counts the changes waiting in the outbox.
func (r *Replica) pendingChanges(ctx context.Context, q replica.DB) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, r.outbox.Pending).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending changes: %w", err)
	}
	return n, nil
}

// readChanges reads the changes of the frozen entries where cond holds
// (readSQL), their prev worked out: from the entry's prev, else from the
// base it copied from the row's record.
func readChanges(ctx context.Context, tx *sql.Tx, cond string, args ...any) ([]syncproto.Change, error) {
	ecs, err := readEntries(ctx, tx, cond, args...)
	if err != nil {
		return nil, err
	}
	out := make([]syncproto.Change, len(ecs))
	for i, ec := range ecs {
		out[i] = ec.Change
	}
	return out, nil
}

// entryChange is one change of a frozen entry, with the entry's id.
type entryChange struct {
	entry int64
	syncproto.Change
}

// readEntries is readChanges, with each change's entry.
func readEntries(ctx context.Context, tx *sql.Tx, cond string, args ...any) ([]entryChange, error) {
	rows, err := tx.QueryContext(ctx, readSQL(cond), args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []entryChange
	var clocks *replica.ClockReader
	// Each entry has its own base (the record when it was frozen).
	bases := map[int64]map[string]syncproto.Version{}
	for rows.Next() {
		var ec entryChange
		c := &ec.Change
		var hlc int64
		var prevHLC sql.NullInt64
		var prevNode sql.NullString
		var base []byte
		if err := rows.Scan(&c.Table, &c.PK, &c.Column, &c.Value, &hlc, &c.Version.Node, &prevHLC, &prevNode, &base, &ec.entry); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		if raw, ok := c.Value.([]byte); ok {
			c.Value = string(raw)
		}
		c.Version.HLC = syncproto.Timestamp(hlc)
		switch {
		case prevHLC.Valid:
			c.Prev = syncproto.Version{HLC: syncproto.Timestamp(prevHLC.Int64), Node: prevNode.String}
		case base != nil:
			k := ec.entry
			vs, ok := bases[k]
			if !ok {
				if clocks == nil {
					if clocks, err = replica.NewClockReader(ctx, tx); err != nil {
						return nil, fmt.Errorf("read outbox: %w", err)
					}
				}
				if vs, err = clocks.Versions(ctx, c.Table, base); err != nil {
					return nil, fmt.Errorf("read outbox: prev of %s %s: %w", c.Table, c.PK, err)
				}
				bases[k] = vs
			}
			c.Prev = vs[c.Column]
		}
		out = append(out, ec)
	}
	return out, rows.Err()
}

// pendingVersions is replica.Options.Pending: the newest outbox entry of
// each cell of the rows, as the version the device holds when it beats
// the record's. The page's rows were frozen before (applyAnswer).
func (r *Replica) pendingVersions(ctx context.Context, tx *sql.Tx, rows []syncproto.RowKey) (map[syncproto.RowKey]map[string]syncproto.Version, error) {
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
		q, err := tx.QueryContext(ctx, r.outbox.Held, table, string(list))
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

// acknowledge records the versions of an acknowledged batch's changes in
// the rows' records: they are now versions the server holds, and the
// entries leave the outbox. The refused rows were set aside already;
// the others' changes are the batch as it was sent (its entries are
// frozen), which saves reading them again.
func (r *Replica) acknowledge(ctx context.Context, tx *sql.Tx, batch *syncproto.Batch, refused []syncproto.Refusal) error {
	aside := map[syncproto.RowKey]bool{}
	for _, rf := range refused {
		aside[syncproto.RowKey{Table: rf.Table, PK: rf.PK}] = true
	}
	changes := make([]syncproto.Change, 0, len(batch.Changes))
	for _, c := range batch.Changes {
		if !aside[c.Row()] {
			c.Prev = c.Version
			changes = append(changes, c)
		}
	}
	if _, err := replica.Apply(ctx, tx, r.schema, changes, replica.Options{VersionsOnly: true}); err != nil {
		return fmt.Errorf("acknowledge batch: %w", err)
	}
	if _, err := tx.ExecContext(ctx, r.outbox.Ack, batch.ID); err != nil {
		return fmt.Errorf("drop acknowledged batch: %w", err)
	}
	return nil
}

// rowKeys are the rows of changes, each once.
func rowKeys(changes []syncproto.Change) []syncproto.RowKey {
	seen := make(map[syncproto.RowKey]bool, len(changes)/8)
	var out []syncproto.RowKey
	for i := range changes {
		if k := changes[i].Row(); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	// By table, then key: the order of the text table+"\x00"+pk, without
	// building that text twice per comparison (a page holds thousands).
	slices.SortFunc(out, func(a, b syncproto.RowKey) int {
		if c := strings.Compare(a.Table, b.Table); c != 0 {
			return c
		}
		return strings.Compare(a.PK, b.PK)
	})
	return out
}

// errLookOnly ends the transaction of a look at the outbox: what it froze
// is rolled back.
var errLookOnly = errors.New("look only")

// Pending returns the changes waiting in the outbox, oldest first, as
// they would be pushed now: the open entries as they would be frozen,
// each change with its version and prev. It changes nothing.
func (r *Replica) Pending(ctx context.Context) ([]syncproto.Change, error) {
	var out []syncproto.Change
	err := r.db.Write(ctx, func(tx *sql.Tx) error {
		if err := r.freeze(ctx, tx, "", nil); err != nil {
			return err
		}
		var err error
		if out, err = readChanges(ctx, tx, "1"); err != nil {
			return err
		}
		return errLookOnly
	})
	if err != nil && !errors.Is(err, errLookOnly) {
		return nil, fmt.Errorf("pending changes: %w", err)
	}
	return out, nil
}
