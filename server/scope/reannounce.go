package scope

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// Reannounce gives new sequence numbers to the cells of rows whose
// visibility a write may have widened, so that devices whose cursor is
// already past those cells receive them at their next pull:
//   - a row whose owner or date cell changed (it may now reach a
//     coordinator who never received its other cells);
//   - when a coordination changes: the row itself, and every row of the
//     coordinated médiateur a coordinator may see, with the structures
//     where they work;
//   - when a mediateur_en_activite row changes: the row and its structure.
//
// Only cells with a sequence number up to before (those that existed
// before this write) are renumbered: the write's own cells are new
// already. Devices that held those cells receive them again and merge
// them as duplicates: a rare cost for a rare event (a team change), which
// keeps the pull a plain cursor with no per-device state.
func (r *Rules) Reannounce(ctx context.Context, tx *sql.Tx, changed []Written, before int64) error {
	var rows []syncproto.RowKey     // to renumber
	var people, structures []string // whose rows, which structures
	var activities, links []string  // activities re-dated, accompaniments re-linked
	for _, w := range changed {
		p := r.policy(w.Table)
		switch p.kind {
		case kindOwned:
			if p.team == nil {
				if w.Column == OwnerColumn {
					rows = append(rows, syncproto.RowKey{Table: w.Table, PK: w.PK})
				}
				continue
			}
			if w.Column == OwnerColumn || (p.team.dateColumn != "" && w.Column == p.team.dateColumn) ||
				(p.team.byActivity != "" && w.Column == p.team.byActivity) {
				rows = append(rows, syncproto.RowKey{Table: w.Table, PK: w.PK})
			}
			// The rows dated through this one may become visible with
			// it: an activity's accompaniments, participants and
			// beneficiaries; an accompaniment's beneficiary.
			if w.Table == "activite" && (w.Column == OwnerColumn || w.Column == p.team.dateColumn) {
				activities = append(activities, w.PK)
			}
			if r.Widens(w.Table, w.Column) {
				links = append(links, w.PK)
			}
		case kindCoordination, kindEnActivite:
			rows = append(rows, syncproto.RowKey{Table: w.Table, PK: w.PK})
		}
	}
	if len(rows) == 0 && len(links) == 0 {
		return nil
	}
	// The rows to renumber are gathered here, in Go, rather than in a
	// temporary table: the same text then runs on SQLite and PostgreSQL
	// (no INSERT OR IGNORE, no temp. schema, no WITHOUT ROWID), and the
	// set is small (the rows of a team change, or a batch's re-linked
	// rows).
	set := keySet{}
	for _, k := range rows {
		set.add(k.Table, k.PK)
	}
	if err := r.reannounceLinked(ctx, tx, activities, links, set); err != nil {
		return err
	}
	for _, k := range rows {
		switch r.policy(k.Table).kind {
		case kindCoordination:
			m, err := cellText(ctx, tx, r.schema, k.Table, k.PK, "mediateur_id")
			if err != nil {
				return err
			}
			if m != "" {
				people = append(people, m)
			}
		case kindEnActivite:
			s, err := cellText(ctx, tx, r.schema, k.Table, k.PK, "structure_id")
			if err != nil {
				return err
			}
			if s != "" {
				structures = append(structures, s)
			}
		}
	}
	for _, m := range people {
		for table, p := range r.tables {
			if p.kind != kindOwned || p.team == nil {
				continue
			}
			if err := set.query(ctx, tx, "SELECT CAST(? AS TEXT), id FROM "+quote(table)+" WHERE "+quote(OwnerColumn)+" = ?", table, m); err != nil {
				return fmt.Errorf("reannounce rows of %s in %s: %w", m, table, err)
			}
		}
		if err := set.query(ctx, tx, `SELECT 'mediateur_en_activite', id FROM mediateur_en_activite WHERE mediateur_id = ?
			UNION SELECT 'structure', structure_id FROM mediateur_en_activite WHERE mediateur_id = ? AND structure_id IS NOT NULL`, m, m); err != nil {
			return fmt.Errorf("reannounce structures of %s: %w", m, err)
		}
	}
	for _, s := range structures {
		set.add("structure", s)
	}
	// Renumber gives the new numbers in the rows' old order, above every
	// number given so far, so they cannot collide with one another or
	// with the unique index.
	if _, err := replica.Renumber(ctx, tx, set.keys(), before); err != nil {
		return fmt.Errorf("reannounce: %w", err)
	}
	return nil
}

// keySet gathers the rows to re-announce, each once.
type keySet map[syncproto.RowKey]bool

func (s keySet) add(table, pk string) { s[syncproto.RowKey{Table: table, PK: pk}] = true }

// query adds the rows a query returns as (table, primary key).
func (s keySet) query(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var table, pk string
		if err := rows.Scan(&table, &pk); err != nil {
			return err
		}
		s.add(table, pk)
	}
	return rows.Err()
}

// keys lists the set in a stable order.
func (s keySet) keys() []syncproto.RowKey {
	out := make([]syncproto.RowKey, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b syncproto.RowKey) int {
		return cmp.Or(strings.Compare(a.Table, b.Table), strings.Compare(a.PK, b.PK))
	})
	return out
}

// Widens reports whether writing table.column of a row, even a new row,
// may make other rows visible to a coordinator: an accompaniment links a
// beneficiary to an activity, and the beneficiary is dated by it (see
// teamRule.byAccompaniment). Writes to other new rows need no
// re-announcing (see Reannounce).
func (r *Rules) Widens(table, column string) bool {
	return table == "accompagnement" && (column == "activite_id" || column == "beneficiaire_id") &&
		r.policy(table).kind == kindOwned && r.policy("beneficiaire").team != nil
}

// reannounceLinked adds to set the rows dated through the
// activities re-dated (or given to someone else) and the accompaniments
// re-linked: their accompaniments, anonymous participants and
// beneficiaries. Only rows of médiateurs someone coordinates are named:
// nobody else receives them through a link, and a conseillère's every
// new accompaniment of a known beneficiary would otherwise send the
// beneficiary again to her own devices.
func (r *Rules) reannounceLinked(ctx context.Context, tx *sql.Tx, activities, links []string, set keySet) error {
	if r.policy("accompagnement").kind != kindOwned || r.policy("coordination").kind != kindCoordination {
		return nil
	}
	coordinated := ` AND EXISTS (SELECT 1 FROM coordination co WHERE co.mediateur_id = x.mediateur_id)`
	if len(activities) > 0 {
		list, err := json.Marshal(activities)
		if err != nil {
			return fmt.Errorf("reannounce: %w", err)
		}
		q := `SELECT 'accompagnement', x.id FROM accompagnement x WHERE x.activite_id IN (SELECT value FROM json_each(?1))` + coordinated + `
			UNION SELECT 'beneficiaire', x.beneficiaire_id FROM accompagnement x
				WHERE x.activite_id IN (SELECT value FROM json_each(?1)) AND x.beneficiaire_id IS NOT NULL` + coordinated
		if r.policy("participants_anonymes").kind == kindOwned {
			q += ` UNION SELECT 'participants_anonymes', x.id FROM participants_anonymes x
				WHERE x.activite_id IN (SELECT value FROM json_each(?1))` + coordinated
		}
		if err := set.query(ctx, tx, q, string(list)); err != nil {
			return fmt.Errorf("reannounce rows of activities: %w", err)
		}
	}
	if len(links) > 0 {
		list, err := json.Marshal(links)
		if err != nil {
			return fmt.Errorf("reannounce: %w", err)
		}
		if err := set.query(ctx, tx, `SELECT 'beneficiaire', x.beneficiaire_id FROM accompagnement x
			WHERE x.id IN (SELECT value FROM json_each(?)) AND x.beneficiaire_id IS NOT NULL`+coordinated, string(list)); err != nil {
			return fmt.Errorf("reannounce beneficiaries of accompaniments: %w", err)
		}
	}
	return nil
}

// Written names a cell a write changed.
type Written struct {
	Table, PK, Column string
}

func cellText(ctx context.Context, tx *sql.Tx, schema *syncproto.Schema, table, pk, col string) (string, error) {
	vals, err := replica.Values(ctx, tx, schema, table, []string{pk}, []string{col})
	if err != nil {
		return "", fmt.Errorf("reannounce: read %s.%s: %w", table, col, err)
	}
	return text(vals[pk][col]), nil
}

// quote makes a schema identifier safe to splice into SQL. Table names
// come from the schema read from the database, never from a request.
func quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}
