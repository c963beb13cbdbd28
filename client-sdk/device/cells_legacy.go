package device

import (
	"fmt"
	"strings"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/syncproto"
)

// The per-cell layout of a device replica (one _cells row per cell, the
// layout before version records), kept for the web SDK (client-sdk/web),
// which still builds it from the SQL the server serves. The wire does not
// depend on a replica's layout, so such a device syncs with this server
// like any other. The Go SDK builds the version-record layout
// (SchemaSQL); SchemaSQLCells is this one. Once the web SDK keeps version
// records (LAYOUT.md), this file goes.

// cellsSetVersions are the migrations of the version-record layout,
// which a replica of the per-cell layout does not run.
var cellsSetVersions = map[migrations.Set]int64{migrations.Replica: 3, migrations.Device: 71}

// cellsTriggers are the triggers of a replica of the per-cell layout.
func cellsTriggers(schema *syncproto.Schema) []string {
	var want []string
	for _, name := range schema.TableNames() {
		want = append(want, cellsCaptureTriggers(schema.Tables[name])...)
	}
	want = append(want, domain.DeviceTriggersCells(schema, notApplying)...)
	return append(want, ownerTriggers(schema, notApplying)...)
}

// cellsCaptureTriggers returns, for a replica of the per-cell layout
// (_cells; the web SDK's until it moves to version records), the SQL that makes plain INSERT, UPDATE and
// DELETE on a synced table record each changed cell in the outbox. The
// triggers are pure SQL (no function registered from Go) so that SDKs on
// other platforms can install the very same text.
func cellsCaptureTriggers(t *syncproto.Table) []string {
	q := quoteIdent(t.Name)
	lit := quoteLiteral(t.Name)
	cols := t.ColumnNames()
	var checks strings.Builder
	// Refuse at write time what the server would refuse later, so a bad
	// row fails in the application instead of blocking the outbox.
	// Lower case only, as the server stores keys: an upper-case id would
	// come back from the server as another row.
	fmt.Fprintf(&checks, "    SELECT RAISE(ABORT, 'relais: %s.id must be a UUID in lower case') WHERE typeof(NEW.id) != 'text' OR length(NEW.id) != 36 OR NEW.id NOT GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-*-*-*-*' OR NEW.id != lower(NEW.id);\n", t.Name)
	for _, c := range cols {
		allowed := map[syncproto.ColumnType]string{
			syncproto.TypeText:    "'text', 'null'",
			syncproto.TypeInteger: "'integer', 'null'",
			syncproto.TypeReal:    "'real', 'integer', 'null'",
		}[t.Columns[c]]
		fmt.Fprintf(&checks, "    SELECT RAISE(ABORT, 'relais: %s.%s must be %s') WHERE typeof(NEW.%s) NOT IN (%s);\n",
			t.Name, c, strings.ToLower(string(t.Columns[c])), quoteIdent(c), allowed)
	}

	var ins, upd strings.Builder
	fmt.Fprintf(&ins, "    INSERT INTO _outbox (tbl, pk, col, val) SELECT %s, NEW.id, '%s', 0 WHERE EXISTS (SELECT 1 FROM _cells WHERE tbl = %s AND pk = NEW.id AND col = '%s' AND val = 1);\n",
		lit, syncproto.DeletedColumn, lit, syncproto.DeletedColumn)
	_, owned := t.Columns[ownerColumn]
	owned = owned && !adminTables[t.Name]
	for _, c := range cols {
		qc, lc := quoteIdent(c), quoteLiteral(c)
		val := "NEW." + qc
		if owned && c == ownerColumn {
			// The owner as the row holds it now: an owner left empty is
			// filled by another AFTER INSERT trigger (owner.go), which
			// may run before this one, and NEW would still say NULL.
			val = fmt.Sprintf("(SELECT %s FROM %s WHERE id = NEW.id)", qc, q)
		}
		fmt.Fprintf(&ins, "    INSERT INTO _outbox (tbl, pk, col, val) SELECT %s, NEW.id, %s, %s WHERE %s IS NOT (SELECT val FROM _cells WHERE tbl = %s AND pk = NEW.id AND col = %s);\n",
			lit, lc, val, val, lit, lc)
		fmt.Fprintf(&upd, "    INSERT INTO _outbox (tbl, pk, col, val) SELECT %s, NEW.id, %s, NEW.%s WHERE NEW.%s IS NOT OLD.%s;\n",
			lit, lc, qc, qc, qc)
	}
	name := func(op string) string { return quoteIdent("_capture_" + t.Name + "_" + op) }
	check := func(op string) string { return quoteIdent("_check_" + t.Name + "_" + op) }
	return []string{
		fmt.Sprintf("CREATE TRIGGER %s BEFORE INSERT ON %s WHEN %s\nBEGIN\n%sEND", check("insert"), q, notApplying, checks.String()),
		fmt.Sprintf("CREATE TRIGGER %s BEFORE UPDATE ON %s WHEN %s\nBEGIN\n    SELECT RAISE(ABORT, 'relais: the id of a synced row cannot change') WHERE NEW.id IS NOT OLD.id;\n%sEND",
			check("update"), q, notApplying, checks.String()),
		fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s WHEN %s\nBEGIN\n    %s\n%sEND", name("insert"), q, notApplying, clockTick, ins.String()),
		fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s WHEN %s\nBEGIN\n    %s\n%sEND", name("update"), q, notApplying, clockTick, upd.String()),
		fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s WHEN %s\nBEGIN\n    %s\n    INSERT INTO _outbox (tbl, pk, col, val) VALUES (%s, OLD.id, '%s', 1);\nEND",
			name("delete"), q, notApplying, clockTick, lit, syncproto.DeletedColumn),
	}
}
