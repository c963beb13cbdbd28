package scope

import (
	"context"
	"slices"
	"time"
	_ "time/tzdata" // Europe/Paris even on a machine without a zone database

	"github.com/relais-numerique/relais/syncproto"
)

// Today is the day, in Paris where the Coop's people work, that a
// coordination's dates are compared with when a person acts now
// (resolving a conflict, revoking a device): one rule for the dashboard
// and the HTTP API.
func Today(now time.Time) string {
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		loc = time.UTC // cannot happen with time/tzdata embedded
	}
	return now.In(loc).Format(time.DateOnly)
}

// CoordinatesOn reports whether the principal coordinates the médiateur
// on day ("2006-01-02"): a coordination naming both runs that day.
func (v *View) CoordinatesOn(mediateur, day string) bool {
	for _, w := range v.team[mediateur] {
		if w.holds(day) {
			return true
		}
	}
	return false
}

// MayRevoke reports whether the principal may revoke (and so wipe) a
// device of owner on day today: an administrator any, anyone their own,
// a coordinator those of the médiateurs they coordinate that day (from
// the coordination's first day to its last). The dashboard and
// POST /v1/devices/{id}/revoke both ask here.
func (v *View) MayRevoke(owner, today string) bool {
	return v.all || owner == v.who.UserID || v.CoordinatesOn(owner, today)
}

// Owned reports whether table's OwnerColumn names the owner of its rows.
// In the team tables (coordination, mediateur_en_activite) the same
// column names the médiateur concerned, who does not own the row: only
// administrators write those.
func (r *Rules) Owned(table string) bool { return r.policy(table).kind == kindOwned }

// MayResolve reports whether the principal may write column of a row of
// table whose owner is owner, on day today, when resolving a conflict:
// the decision CheckResolution makes on the row as held, without reading
// it. A page uses it to offer the choice; the write is judged again by
// CheckResolution, which also reads the row's date and the value written.
func (v *View) MayResolve(table, column, owner, today string) bool {
	if v.all {
		return true
	}
	p := v.rules.policy(table)
	if p.kind != kindOwned {
		return false
	}
	if owner == v.who.UserID {
		return true
	}
	return v.coordinatorGrant(p, column, owner, today)
}

// coordinatorGrant is the one write a person may make on a row they do
// not own: a coordinator, resolving a conflict, writes a cell a
// coordinator receives (not the owner, not a deletion, not a personal
// column) of a row of a médiateur they coordinate that day.
func (v *View) coordinatorGrant(p policy, column, owner, today string) bool {
	if v.who.Role != RoleCoordinateur || p.kind != kindOwned || p.team == nil {
		return false
	}
	if column == OwnerColumn || column == syncproto.DeletedColumn || slices.Contains(p.team.hidden, column) {
		return false
	}
	return v.CoordinatesOn(owner, today)
}

// CheckResolution refuses, with forbidden_scope, a write a person makes
// on the dashboard to resolve a conflict, when they may not make it. It
// is the push's check (CheckPush: team, reference and closed tables are
// administrators'; a row of someone else is not written; a row is not
// handed to someone else), with the one grant coordinatorGrant describes,
// and that grant only on a row the coordinator's pull would deliver
// (View.Filter: an activity dated inside the coordination, and so on). A
// resolution is a write like any other. q must see the rows as they are
// before the write (the write's transaction).
func (r *Rules) CheckResolution(ctx context.Context, q Queryer, who Who, today string, changes []syncproto.Change) error {
	if who.Role == RoleAdmin || len(changes) == 0 {
		return nil
	}
	own := changes
	if who.Role == RoleCoordinateur {
		v, err := r.Load(ctx, q, who)
		if err != nil {
			return err
		}
		byTable := map[string][]string{}
		for _, c := range changes {
			if r.policy(c.Table).kind == kindOwned && !slices.Contains(byTable[c.Table], c.PK) {
				byTable[c.Table] = append(byTable[c.Table], c.PK)
			}
		}
		owners := map[syncproto.RowKey]string{}
		for table, pks := range byTable {
			m, err := heldRows(ctx, q, table, pks)
			if err != nil {
				return err
			}
			for pk, h := range m {
				owners[syncproto.RowKey{Table: table, PK: pk}] = h.owner
			}
		}
		own = nil
		var granted []syncproto.Change
		for _, c := range changes {
			owner, held := owners[c.Row()]
			if held && owner != who.UserID && v.coordinatorGrant(r.policy(c.Table), c.Column, owner, today) {
				granted = append(granted, c)
			} else {
				own = append(own, c)
			}
		}
		// The grant covers what the coordinator may receive, decided by
		// the pull's own filter on the row as held.
		if len(granted) > 0 {
			probe := slices.Clone(granted)
			kept, err := v.Filter(ctx, q, probe, nil)
			if err != nil {
				return err
			}
			if len(kept) != len(granted) {
				c := granted[0]
				return syncproto.Errorf(syncproto.CodeForbiddenScope,
					"%s %s is outside what you receive of the médiateurs you coordinate", c.Table, c.PK).
					With(syncproto.DetailTable, c.Table).With(syncproto.DetailPK, c.PK)
			}
		}
	}
	_, err := r.CheckPushRows(ctx, q, who, own)
	return err
}
