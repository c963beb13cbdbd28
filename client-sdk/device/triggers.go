package device

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// clockTick advances the replica's hybrid logical clock by one local event,
// in SQL: the next reading is above the last one and never below the wall
// clock (48-bit milliseconds shifted above a 16-bit counter). It is the
// same rule as syncproto.Next, written so that any SQLite can run it.
//
// The wall clock is shifted by _device.clock_skew_ms, 0 unless a test or a
// diagnosis set Options.ClockSkew to mimic a device whose date is wrong.
const clockTick = `UPDATE _replica SET hlc = MAX(hlc + 1,
    (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)
     + (SELECT clock_skew_ms FROM _device WHERE id = 1)) << 16) WHERE id = 1;`

const notApplying = `(SELECT applying FROM _replica WHERE id = 1) = 0`

// captureTriggers returns the SQL that makes plain INSERT, UPDATE and
// DELETE on a synced table record each row they change in the outbox:
// one clock tick and one upsert of the row's open entry, whose mask
// gains the bits of the columns changed (cols: the mask positions, see
// captureColumns). The triggers are pure SQL (no function registered
// from Go) so that SDKs on other platforms can install the very same
// text.
//
// The UPDATEs of column apart (see updatedApart; "" for none) are
// captured by a trigger of their own, UPDATE OF that column, and the
// other columns' by one UPDATE OF them: an UPDATE setting both fires
// both, each folding its bits into the row's open entry.
func captureTriggers(t *syncproto.Table, cols []string, apart string) []string {
	q := quoteIdent(t.Name)
	lit := quoteLiteral(t.Name)
	synced := cols[1:]
	// What an insert is compared with: nothing for a new row (every
	// column set is sent), the row it replaces for INSERT OR REPLACE
	// (which fires no DELETE trigger), the values kept with a deleted
	// row for a re-creation. The BEFORE INSERT trigger puts them in
	// _replaced, where the AFTER INSERT trigger reads them (one probe of
	// an empty table for a new row) and clears them.
	// Tables are named by their number in the replica's dictionary
	// (_tables), looked up rather than written in: the number is the
	// replica's own, and the same text must serve every replica.
	tid := tableID(t.Name)
	rowKey := fmt.Sprintf("_rows.tbl = %s AND _rows.pk = %s", tid, replica.PKSQL("NEW.id"))
	var obj, oldObj, removes []string
	for _, c := range synced {
		obj = append(obj, quoteLiteral(c), quoteIdent(c))
		oldObj = append(oldObj, quoteLiteral("$."+c), "OLD."+quoteIdent(c))
		removes = append(removes, quoteLiteral("$."+c))
	}
	// Only an insert that replaces a row, re-creates a deleted one, or
	// finds a stash left by an INSERT OR IGNORE that was ignored has
	// anything to put aside: a new row costs three probes, not four
	// statements.
	beforeWhen := fmt.Sprintf("%s AND (EXISTS (SELECT 1 FROM %s WHERE id = NEW.id) OR EXISTS (SELECT 1 FROM _rows WHERE %s AND deleted = 1) OR EXISTS (SELECT 1 FROM _replaced WHERE tbl = %s AND pk = NEW.id))",
		notApplying, q, rowKey, lit)
	var before strings.Builder
	fmt.Fprintf(&before, "    DELETE FROM _replaced WHERE tbl = %s AND pk = NEW.id;\n", lit)
	if len(synced) > 0 {
		fmt.Fprintf(&before, "    INSERT INTO _replaced (tbl, pk, vals, recreate) SELECT %s, id, json_object(%s), 0 FROM %s WHERE id = NEW.id;\n",
			lit, strings.Join(obj, ", "), q)
		fmt.Fprintf(&before, "    INSERT OR REPLACE INTO _replaced (tbl, pk, vals, recreate) SELECT %s, NEW.id, COALESCE(extra, '{}'), 1 FROM _rows WHERE %s AND deleted = 1;\n",
			lit, rowKey)
		fmt.Fprintf(&before, "    UPDATE _rows SET deleted = 0, extra = NULLIF(json_remove(COALESCE(extra, '{}'), %s), '{}') WHERE %s AND deleted = 1;\n",
			strings.Join(removes, ", "), rowKey)
	} else {
		fmt.Fprintf(&before, "    INSERT OR REPLACE INTO _replaced (tbl, pk, vals, recreate) SELECT %s, NEW.id, '{}', 1 FROM _rows WHERE %s AND deleted = 1;\n", lit, rowKey)
		fmt.Fprintf(&before, "    UPDATE _rows SET deleted = 0 WHERE %s AND deleted = 1;\n", rowKey)
	}

	// upsert folds a write into the row's open entry (mask: the SQL of
	// the bits it changed, 0 for none), creating it if there is none.
	upsert := func(pk, mask string) string {
		return fmt.Sprintf("    INSERT INTO _outbox (tbl, pk, mask, hlc) SELECT %s, %s, m, (SELECT hlc FROM _replica WHERE id = 1) FROM (SELECT %s AS m) WHERE m != 0\n"+
			"        ON CONFLICT (tbl, pk) WHERE vals IS NULL DO UPDATE SET mask = mask | excluded.mask, hlc = excluded.hlc;\n", tid, pk, mask)
	}
	insBits := []string{"(CASE WHEN s.recreate = 1 THEN 1 ELSE 0 END)"}
	var updBits, changed, updOf []string
	apartBit := uint64(0)
	for i, c := range synced {
		bit := uint64(1) << (i + 1)
		qc := quoteIdent(c)
		// An owner left empty is filled by another AFTER INSERT trigger
		// (owner.go) with an UPDATE, which the update trigger folds
		// into the same entry: NEW's owner is enough here.
		val := "NEW." + qc
		insBits = append(insBits, fmt.Sprintf("(CASE WHEN %s IS NOT s.vals ->> %s THEN %d ELSE 0 END)", val, quoteLiteral("$."+c), bit))
		if c == apart {
			apartBit = bit
			continue
		}
		updBits = append(updBits, fmt.Sprintf("(CASE WHEN NEW.%s IS NOT OLD.%s THEN %d ELSE 0 END)", qc, qc, bit))
		changed = append(changed, fmt.Sprintf("NEW.%s IS NOT OLD.%s", qc, qc))
		updOf = append(updOf, qc)
	}
	if apartBit == 0 || len(updOf) == 0 {
		// Not a synced column, or the only one: nothing to set apart.
		apart = ""
	}
	var ins strings.Builder
	fmt.Fprintf(&ins, "    INSERT INTO _outbox (tbl, pk, mask, hlc) SELECT %s, NEW.id, m, (SELECT hlc FROM _replica WHERE id = 1) FROM\n"+
		"        (SELECT %s AS m FROM (SELECT 1) LEFT JOIN _replaced s ON s.tbl = %s AND s.pk = NEW.id) WHERE m != 0\n"+
		"        ON CONFLICT (tbl, pk) WHERE vals IS NULL DO UPDATE SET mask = mask | excluded.mask, hlc = excluded.hlc;\n",
		tid, strings.Join(insBits, " | "), lit)
	fmt.Fprintf(&ins, "    DELETE FROM _replaced WHERE tbl = %s AND pk = NEW.id;\n", lit)
	upd := "0"
	if len(updBits) > 0 {
		upd = strings.Join(updBits, " | ")
	}
	// An UPDATE that changes nothing ticks no clock and writes nothing.
	updWhen := notApplying
	if len(changed) > 0 {
		updWhen += " AND (" + strings.Join(changed, " OR ") + ")"
	} else {
		updWhen += " AND 0"
	}
	// A deleted row's values are kept with its versions, so that an
	// explicit re-creation brings back what it does not set, and so
	// that freezing the entry finds them.
	oldKey := fmt.Sprintf("_rows.tbl = %s AND _rows.pk = %s", tid, replica.PKSQL("OLD.id"))
	var del strings.Builder
	// A table this replica has never numbered (a fresh one) gets its
	// number, with its tombstone as column 0, as replica.Apply would.
	fmt.Fprintf(&del, "    INSERT OR IGNORE INTO _tables (name) VALUES (%s);\n", lit)
	fmt.Fprintf(&del, "    INSERT OR IGNORE INTO _columns (tbl, bit, name) SELECT id, 0, '%s' FROM _tables WHERE name = %s;\n", syncproto.DeletedColumn, lit)
	if len(synced) > 0 {
		fmt.Fprintf(&del, "    INSERT INTO _rows (tbl, pk, deleted, clocks, extra) SELECT %s, %s, 1, x'', json_set('{}', %s) WHERE NOT EXISTS (SELECT 1 FROM _rows WHERE %s);\n",
			tid, replica.PKSQL("OLD.id"), strings.Join(oldObj, ", "), oldKey)
		fmt.Fprintf(&del, "    UPDATE _rows SET deleted = 1, extra = json_set(COALESCE(extra, '{}'), %s) WHERE %s;\n", strings.Join(oldObj, ", "), oldKey)
	} else {
		fmt.Fprintf(&del, "    INSERT INTO _rows (tbl, pk, deleted, clocks) SELECT %s, %s, 1, x'' WHERE NOT EXISTS (SELECT 1 FROM _rows WHERE %s);\n",
			tid, replica.PKSQL("OLD.id"), oldKey)
		fmt.Fprintf(&del, "    UPDATE _rows SET deleted = 1 WHERE %s;\n", oldKey)
	}
	del.WriteString(upsert("OLD.id", "1"))
	name := func(op string) string { return quoteIdent("_capture_" + t.Name + "_" + op) }
	update := "UPDATE"
	if apart != "" {
		update = "UPDATE OF " + strings.Join(updOf, ", ")
	}
	out := []string{
		fmt.Sprintf("CREATE TRIGGER %s BEFORE INSERT ON %s WHEN %s\nBEGIN\n%sEND", name("before_insert"), q, beforeWhen, before.String()),
		fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s WHEN %s\nBEGIN\n    %s\n%sEND", name("insert"), q, notApplying, clockTick, ins.String()),
		fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s WHEN %s\nBEGIN\n    %s\n%sEND", name("update"), update, q, updWhen, clockTick, upsert("NEW.id", upd)),
		fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s WHEN %s\nBEGIN\n    %s\n%sEND",
			name("delete"), q, notApplying, clockTick, del.String()),
	}
	if apart != "" {
		qa := quoteIdent(apart)
		out = append(out, fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE OF %s ON %s WHEN %s AND NEW.%s IS NOT OLD.%s\nBEGIN\n    %s\n%sEND",
			name("update_"+apart), qa, q, notApplying, qa, qa, clockTick, upsert("NEW.id", fmt.Sprint(apartBit))))
	}
	return out
}

// checkTriggers returns the BEFORE INSERT and BEFORE UPDATE triggers
// that refuse, at write time and with a message that says why, what the
// server would refuse later, so that a bad row fails in the application
// instead of blocking the outbox. One trigger per statement kind, whose
// one expression names the first check failed, in this order: the
// owner's (ownerCheck: a conseillère writes her own rows), the domain's
// rules (rules: domain.DeviceRuleCases), then the values' types and the
// id. A valid write costs one trigger frame and one expression, instead
// of a trigger for each kind of check (each with its own frame, guard
// and reads of _replica and _device: issue 13).
//
// Ids are lower case only, as the server stores keys: an upper-case id
// would come back from the server as another row.
func checkTriggers(schema *syncproto.Schema, t *syncproto.Table, rules string) []string {
	types := fmt.Sprintf("\n        WHEN typeof(NEW.id) != 'text' OR length(NEW.id) != 36 OR NEW.id NOT GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-*-*-*-*' OR NEW.id != lower(NEW.id) THEN 'relais: %s.id must be a UUID in lower case'", t.Name)
	for _, c := range t.ColumnNames() {
		types += typeCase(t, c)
	}
	// check is the trigger of op called name, for the writes of the
	// columns of (an UPDATE OF list), or of any column if of is "".
	check := func(name, op, of, cases string) string {
		expr := fmt.Sprintf("CASE%s\n        END", cases)
		if owner := ownerCheck(schema, t, op); owner != "" {
			// The owner's check reads _device once, and returns NULL
			// when it passes: the CASE runs only then.
			expr = fmt.Sprintf("COALESCE(%s,\n        %s)", owner, expr)
		}
		event := op
		if of != "" {
			event += " OF " + of
		}
		return fmt.Sprintf("CREATE TRIGGER %s BEFORE %s ON %s WHEN %s\nBEGIN\n    SELECT RAISE(ABORT, failed) FROM (SELECT %s AS failed) WHERE failed IS NOT NULL;\nEND",
			quoteIdent("_check_"+t.Name+"_"+name), event, quoteIdent(t.Name), notApplying, expr)
	}
	idKept := "\n        WHEN NEW.id IS NOT OLD.id THEN 'relais: the id of a synced row cannot change'"
	apart := updatedApart(schema, t.Name)
	if apart == "" {
		return []string{check("insert", "INSERT", "", rules+types), check("update", "UPDATE", "", rules+idKept+types)}
	}
	// The UPDATEs of the column set apart are checked by a trigger of
	// their own: the owner's check and the column's type are all that
	// reads it (updatedApart).
	of := []string{"id"}
	for _, c := range t.ColumnNames() {
		if c != apart {
			of = append(of, quoteIdent(c))
		}
	}
	return []string{
		check("insert", "INSERT", "", rules+types),
		check("update", "UPDATE", strings.Join(of, ", "), rules+idKept+types),
		check("update_"+apart, "UPDATE", quoteIdent(apart), typeCase(t, apart)),
	}
}

// typeCase is the arm of a check's CASE that refuses a value of column c
// of the wrong type.
func typeCase(t *syncproto.Table, c string) string {
	allowed := map[syncproto.ColumnType]string{
		syncproto.TypeText:    "'text', 'null'",
		syncproto.TypeInteger: "'integer', 'null'",
		syncproto.TypeReal:    "'real', 'integer', 'null'",
	}[t.Columns[c]]
	return fmt.Sprintf("\n        WHEN typeof(NEW.%s) NOT IN (%s) THEN 'relais: %s.%s must be %s'",
		quoteIdent(c), allowed, t.Name, c, strings.ToLower(string(t.Columns[c])))
}

// installTriggers (re)creates the capture triggers of every synced table
// in one transaction, so they always match the current schema, including
// columns added by a migration since the last open.
func installTriggers(ctx context.Context, db *sql.DB, schema *syncproto.Schema) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("install triggers: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	// Every synced table and column numbered in the replica's
	// dictionary, before any trigger names them.
	if _, err := replica.Dictionary(ctx, tx, schema); err != nil {
		return fmt.Errorf("install triggers: %w", err)
	}
	cols, err := captureColumns(ctx, tx, schema)
	if err != nil {
		return fmt.Errorf("install triggers: %w", err)
	}
	want := replicaTriggers(schema, cols)

	rows, err := tx.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND (name LIKE '\_capture\_%' ESCAPE '\' OR name LIKE '\_check\_%' ESCAPE '\')`)
	if err != nil {
		return fmt.Errorf("install triggers: %w", err)
	}
	var old []string
	have := map[string]bool{}
	for rows.Next() {
		var n, text string
		if err := rows.Scan(&n, &text); err != nil {
			rows.Close()
			return fmt.Errorf("install triggers: %w", err)
		}
		old = append(old, n)
		have[text] = true
	}
	rows.Close()
	// Nothing to do when the installed triggers are exactly the ones this
	// schema wants (SQLite keeps each CREATE statement's text as given):
	// reopening a replica then costs no rewrite of the schema, which was
	// most of the time an open took.
	same := len(have) == len(want) && len(old) == len(want)
	for _, stmt := range want {
		same = same && have[stmt]
	}
	if same {
		return nil
	}
	for _, n := range old {
		if _, err := tx.ExecContext(ctx, "DROP TRIGGER "+quoteIdent(n)); err != nil {
			return fmt.Errorf("install triggers: drop %s: %w", n, err)
		}
	}
	for _, stmt := range want {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("install triggers: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("install triggers: %w", err)
	}
	return nil
}

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
