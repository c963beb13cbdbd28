package scope

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// Queryer reads the server database; *sql.DB and *sql.Tx have it.
type Queryer = replica.DB

// window is a coordination's period, as ISO days; "" is open-ended.
type window struct{ from, to string }

func (w window) holds(day string) bool {
	return (w.from == "" || day >= w.from) && (w.to == "" || day <= w.to)
}

// View is what one principal may receive, loaded once per exchange.
type View struct {
	rules *Rules
	who   Who
	all   bool
	// team maps each médiateur the principal coordinates to the periods
	// of the coordinations.
	team map[string][]window
	// structures are those where the principal or their team work.
	structures map[string]bool
}

// Load reads the principal's team and structures.
func (r *Rules) Load(ctx context.Context, q Queryer, who Who) (*View, error) {
	v := &View{rules: r, who: who, all: who.Role == RoleAdmin, team: map[string][]window{}, structures: map[string]bool{}}
	if v.all {
		return v, nil
	}
	// Only a coordinator's account follows a team: a coordination row
	// naming someone else as coordinateur_id grants them nothing.
	if who.Role == RoleCoordinateur {
		rows, err := q.QueryContext(ctx, "SELECT mediateur_id, debut, fin FROM coordination WHERE coordinateur_id = ? AND mediateur_id IS NOT NULL", who.UserID)
		if err != nil {
			return nil, fmt.Errorf("scope: read team of %s: %w", who.UserID, err)
		}
		for rows.Next() {
			var m string
			var from, to sql.NullString
			if err := rows.Scan(&m, &from, &to); err != nil {
				rows.Close()
				return nil, fmt.Errorf("scope: read team of %s: %w", who.UserID, err)
			}
			v.team[m] = append(v.team[m], window{day(from.String), day(to.String)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("scope: read team of %s: %w", who.UserID, err)
		}
	}
	people := append([]any{who.UserID}, anyKeys(v.team)...)
	rows, err := q.QueryContext(ctx, "SELECT DISTINCT structure_id FROM mediateur_en_activite WHERE structure_id IS NOT NULL AND mediateur_id IN ("+
		placeholders(len(people))+")", people...)
	if err != nil {
		return nil, fmt.Errorf("scope: read structures of %s: %w", who.UserID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("scope: read structures of %s: %w", who.UserID, err)
		}
		v.structures[s] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scope: read structures of %s: %w", who.UserID, err)
	}
	return v, nil
}

// Owners lists whose cells the principal's pull reads (see
// replica.ReadOwned): their own, those of the people they coordinate, and
// "" for cells of rows with no owner (reference and team tables). Every
// cell the view keeps is among them; the filter still decides on each.
func (v *View) Owners() []string {
	out := []string{"", v.who.UserID}
	for m := range v.team {
		out = append(out, m)
	}
	return out
}

// All reports whether the view sees every row (an administrator).
func (v *View) All() bool { return v.all }

// Filter returns the cells of changes the principal may receive, in
// order. Cells are dropped whole, never blanked: a personal column a
// coordinator may not see is not sent at all. q must see the cells the
// changes were read from (the same read transaction, ideally). The kept
// cells are moved to the front of changes, whose array the result shares:
// a page is filtered once, and copying it was a visible share of a
// pull's CPU (BENCHMARKS.md, "Figures behind the code").
//
// owners, when not nil, holds each change's owner tag as
// replica.ReadOwned returns it: the merge keeps it equal to the row's
// owner cell in the same transaction, so a tagged cell's owner needs no
// lookup, and an activity's date none either when the page holds it (it
// is read from the same state). Untagged cells of owned tables (a bulk
// writer's, not tagged yet) and the team tables are decided on the cells
// read back from _cells, as they all were before tags.
func (v *View) Filter(ctx context.Context, q Queryer, changes []syncproto.Change, owners []string) ([]syncproto.Change, error) {
	if v.all || len(changes) == 0 {
		return changes, nil
	}
	if owners != nil && len(owners) != len(changes) {
		return nil, fmt.Errorf("scope: %d owner tags for %d cells", len(owners), len(changes))
	}
	tagOf := func(i int) string {
		if owners == nil {
			return ""
		}
		return owners[i]
	}
	// The dates the page itself holds, for the tagged rows of team
	// members in date-windowed tables.
	dates := map[syncproto.RowKey]string{}
	for i := range changes {
		c := &changes[i]
		p := v.rules.policy(c.Table)
		if p.kind != kindOwned || p.team == nil || p.team.dateColumn == "" || c.Column != p.team.dateColumn {
			continue
		}
		if _, coordinated := v.team[tagOf(i)]; coordinated {
			dates[c.Row()] = text(c.Value)
		}
	}
	// The columns to read back per table, and the rows to read them for.
	need := map[string][]string{}
	rowsOf := map[string][]string{}
	seen := map[syncproto.RowKey]bool{}
	for i := range changes {
		c := &changes[i]
		k := c.Row()
		cols := v.lookupColumns(c, k, tagOf(i), dates)
		if cols == nil || seen[k] {
			continue
		}
		seen[k] = true
		// One query per table reads the same columns for all its rows:
		// the union of what each needs (an untagged row its owner, a
		// tagged one its date only).
		for _, col := range cols {
			if !slices.Contains(need[c.Table], col) {
				need[c.Table] = append(need[c.Table], col)
			}
		}
		rowsOf[c.Table] = append(rowsOf[c.Table], c.PK)
	}
	vals := map[string]map[string]map[string]string{}
	for table, pks := range rowsOf {
		m, err := v.rules.lookup(ctx, q, table, need[table], pks)
		if err != nil {
			return nil, err
		}
		vals[table] = m
	}
	// The rows dated through other rows (an accompaniment by its
	// activity, a beneficiary by its accompaniments), for those owned by
	// someone the principal coordinates: one query per table, for what
	// the page does not hold itself.
	var linked map[syncproto.RowKey][]string
	if len(v.team) > 0 {
		held := v.rules.pageLinks(changes)
		needLinks := map[string][]string{}
		seenLink := map[syncproto.RowKey]bool{}
		for i := range changes {
			c := &changes[i]
			p := v.rules.policy(c.Table)
			if p.kind != kindOwned || p.team == nil || !p.team.linked() {
				continue
			}
			k := c.Row()
			if seenLink[k] {
				continue
			}
			if _, coordinated := v.team[v.ownerOf(i, c, tagOf, vals)]; coordinated {
				seenLink[k] = true
				needLinks[c.Table] = append(needLinks[c.Table], c.PK)
			}
		}
		var err error
		if linked, err = v.rules.linkedDates(ctx, q, needLinks, held); err != nil {
			return nil, err
		}
	}
	out := changes[:0]
	for i := range changes {
		c := &changes[i]
		p := v.rules.policy(c.Table)
		if p.kind != kindOwned {
			if v.keep(c, vals[c.Table][c.PK]) {
				out = append(out, *c)
			}
			continue
		}
		k := c.Row()
		var ds []string
		switch {
		case p.team == nil:
		case p.team.linked():
			ds = linked[k]
		case p.team.dateColumn != "":
			d, inPage := dates[k]
			if !inPage {
				d = vals[c.Table][c.PK][p.team.dateColumn]
			}
			ds = []string{d}
		}
		if v.keepOwned(c, v.ownerOf(i, c, tagOf, vals), ds) {
			out = append(out, *c)
		}
	}
	return out, nil
}

// ownerOf is the owner of change i's row: its tag, or the owner cell read
// back when it has none.
func (v *View) ownerOf(i int, c *syncproto.Change, tagOf func(int) string, vals map[string]map[string]map[string]string) string {
	if tag := tagOf(i); tag != "" {
		return tag
	}
	return vals[c.Table][c.PK][OwnerColumn]
}

// lookupColumns are the cells of c's row to read back from _cells to
// decide on it; nil when none is needed. A tagged cell of an owned table
// needs at most its row's date, and only when the row belongs to a team
// member and the page did not bring the date along.
func (v *View) lookupColumns(c *syncproto.Change, k syncproto.RowKey, tag string, dates map[syncproto.RowKey]string) []string {
	p := v.rules.policy(c.Table)
	if p.kind != kindOwned || tag == "" {
		return v.decisionColumns(c.Table)
	}
	if tag == v.who.UserID || p.dateColumn() == "" {
		return nil
	}
	if _, coordinated := v.team[tag]; !coordinated {
		return nil
	}
	if _, inPage := dates[k]; inPage {
		return nil
	}
	return []string{p.team.dateColumn}
}

// dateColumn is the column that dates a row for coordinators, "" when
// the table is not date-windowed.
func (p policy) dateColumn() string {
	if p.team == nil {
		return ""
	}
	return p.team.dateColumn
}

// decisionColumns are the cells of a row that decide whether a principal
// sees it; nil when no lookup is needed.
func (v *View) decisionColumns(table string) []string {
	p := v.rules.policy(table)
	switch p.kind {
	case kindOwned:
		if p.team != nil && p.team.dateColumn != "" && len(v.team) > 0 {
			return []string{OwnerColumn, p.team.dateColumn}
		}
		return []string{OwnerColumn}
	case kindCoordination:
		return []string{"coordinateur_id", "mediateur_id"}
	case kindEnActivite:
		return []string{"mediateur_id"}
	}
	return nil
}

// keep decides on a cell of a table without owner (reference and team
// tables), from the cells of its row read back.
func (v *View) keep(c *syncproto.Change, row map[string]string) bool {
	p := v.rules.policy(c.Table)
	me := v.who.UserID
	switch p.kind {
	case kindCoordination:
		return row["coordinateur_id"] == me || row["mediateur_id"] == me
	case kindEnActivite:
		m := row["mediateur_id"]
		_, coordinated := v.team[m]
		return m == me || coordinated
	case kindStructure:
		return v.structures[c.PK]
	}
	return false
}

// keepOwned decides on a cell of an owned table whose row has owner and
// is dated dates (its date, or the dates of the activities it is linked
// to; used only for the tables a coordinator receives). A team row
// reaches a coordinator when one of its dates is inside one of the
// coordinations of its owner; an undated row reaches none.
func (v *View) keepOwned(c *syncproto.Change, owner string, dates []string) bool {
	if owner == v.who.UserID {
		return true
	}
	p := v.rules.policy(c.Table)
	windows, coordinated := v.team[owner]
	if !coordinated || p.team == nil || slices.Contains(p.team.hidden, c.Column) {
		return false
	}
	for _, date := range dates {
		d := day(date)
		if d == "" {
			continue
		}
		for _, w := range windows {
			if w.holds(d) {
				return true
			}
		}
	}
	return false
}

// pageHeld is what a page's cells say of the rows that date others:
// each by-activity row's activity (table -> pk -> activity id) and each
// activity's date. A page's cells are its rows' values as held in the
// read transaction the scope rules judge in, what replica.Values would
// read back for them; reading them again by key was most of a
// coordinator's pull (BENCHMARKS.md, "What limits it now"), and an
// accompaniment is mostly numbered with its activity, in the same page.
type pageHeld struct {
	links map[string]map[string]string
	dates map[string]string
}

// pageLinks collects pageHeld from a page's cells. A cell the page left
// out (a device's own write, see pullPage) is read back as before.
func (r *Rules) pageLinks(changes []syncproto.Change) pageHeld {
	h := pageHeld{links: map[string]map[string]string{}, dates: map[string]string{}}
	for i := range changes {
		c := &changes[i]
		if c.Table == "activite" && c.Column == "date" {
			h.dates[c.PK] = text(c.Value)
			continue
		}
		p := r.policy(c.Table)
		if p.kind != kindOwned || p.team == nil || p.team.byActivity == "" || c.Column != p.team.byActivity {
			continue
		}
		m := h.links[c.Table]
		if m == nil {
			m = map[string]string{}
			h.links[c.Table] = m
		}
		m[c.PK] = text(c.Value)
	}
	return h
}

// linkedDates reads the dates of the rows of need (table -> primary
// keys) that are dated through other rows. held is what the page holds
// of them (pageLinks); the rest is read as held in the database.
func (r *Rules) linkedDates(ctx context.Context, q Queryer, need map[string][]string, held pageHeld) (map[syncproto.RowKey][]string, error) {
	out := map[syncproto.RowKey][]string{}
	// The activities' dates: from the page, else read by key once for
	// every table of the page (an activity's accompaniments and its
	// anonymous participants ask for the same one).
	type link struct{ row, act string }
	links := map[string][]link{}
	var acts []string
	for table, pks := range need {
		p := r.policy(table)
		switch {
		case p.team.byActivity != "":
			// The rows' activity, from the page or as held, so that a
			// deleted row's tombstone is judged like the row was.
			inPage := held.links[table]
			var missing []string
			for _, pk := range pks {
				if a, ok := inPage[pk]; ok {
					if a != "" {
						links[table] = append(links[table], link{pk, a})
					}
				} else {
					missing = append(missing, pk)
				}
			}
			if len(missing) > 0 {
				vals, err := replica.Values(ctx, q, r.schema, table, missing, []string{p.team.byActivity})
				if err != nil {
					return nil, fmt.Errorf("scope: dates of %s: %w", table, err)
				}
				for pk, m := range vals {
					if a := text(m[p.team.byActivity]); a != "" {
						links[table] = append(links[table], link{pk, a})
					}
				}
			}
		case p.team.byAccompaniment && r.policy("accompagnement").kind == kindOwned:
			// A beneficiary's accompaniments, by the accompagnement
			// table's index on beneficiaire_id.
			keys, err := json.Marshal(pks)
			if err != nil {
				return nil, fmt.Errorf("scope: dates of %s: %w", table, err)
			}
			rows, err := q.QueryContext(ctx, `SELECT beneficiaire_id, activite_id FROM accompagnement
				WHERE beneficiaire_id IN (SELECT value FROM json_each(?)) AND activite_id IS NOT NULL`, string(keys))
			if err != nil {
				return nil, fmt.Errorf("scope: dates of %s: %w", table, err)
			}
			for rows.Next() {
				var l link
				if err := rows.Scan(&l.row, &l.act); err != nil {
					rows.Close()
					return nil, fmt.Errorf("scope: dates of %s: %w", table, err)
				}
				links[table] = append(links[table], l)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("scope: dates of %s: %w", table, err)
			}
		}
		for _, l := range links[table] {
			if _, ok := held.dates[l.act]; !ok {
				acts = append(acts, l.act)
			}
		}
	}
	dates := held.dates
	if len(acts) > 0 {
		vals, err := replica.Values(ctx, q, r.schema, "activite", acts, []string{"date"})
		if err != nil {
			return nil, fmt.Errorf("scope: dates of activities: %w", err)
		}
		dates = make(map[string]string, len(held.dates)+len(vals))
		maps.Copy(dates, held.dates)
		for pk, m := range vals {
			dates[pk] = text(m["date"])
		}
	}
	for table, ls := range links {
		for _, l := range ls {
			if d, ok := dates[l.act]; ok {
				k := syncproto.RowKey{Table: table, PK: l.row}
				out[k] = append(out[k], d)
			}
		}
	}
	return out, nil
}

// lookupChunk bounds the number of keys in one IN list, well under
// SQLite's limit on bound parameters.
const lookupChunk = 500

// lookup reads some columns of some rows of a table as held (a deleted
// row's values are kept with its versions, so a tombstone reaches those
// who saw the row). It returns pk -> column -> value as text.
func (r *Rules) lookup(ctx context.Context, q Queryer, table string, cols, pks []string) (map[string]map[string]string, error) {
	vals, err := replica.Values(ctx, q, r.schema, table, pks, cols)
	if err != nil {
		return nil, fmt.Errorf("scope: read owners in %s: %w", table, err)
	}
	out := make(map[string]map[string]string, len(vals))
	for pk, m := range vals {
		t := make(map[string]string, len(m))
		for c, v := range m {
			if v != nil {
				t[c] = text(v)
			}
		}
		out[pk] = t
	}
	return out, nil
}

// text renders a cell value for comparison with ids and days; NULL is "".
func text(v any) string { return syncproto.ValueText(v) }

// day keeps the date part of an ISO date or date-time, so that
// '2026-03-01T10:00' compares with a coordination ending '2026-03-01'.
func day(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 10 {
		s = s[:10]
	}
	return s
}

func placeholders(n int) string {
	if n <= 0 {
		return "NULL"
	}
	return strings.Repeat("?, ", n-1) + "?"
}

func anyKeys[V any](m map[string]V) []any {
	out := make([]any, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
