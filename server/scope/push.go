package scope

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/relais-numerique/relais/syncproto"
)

// CheckPush refuses, with forbidden_scope, a batch that writes any row the
// principal may not write: a row of someone else, a row handed to
// someone else, a new row that names no owner, or reference and team
// data. The batch is judged whole, before anything is written, against
// the rows as the server holds them (q inside the push's transaction).
func (r *Rules) CheckPush(ctx context.Context, q Queryer, who Who, changes []syncproto.Change) error {
	_, err := r.CheckPushRows(ctx, q, who, changes)
	return err
}

// HeldRows names the rows of a batch of which the server held at least
// one cell before the batch, by (table, primary key).
type HeldRows map[syncproto.RowKey]bool

// CheckPushRows is CheckPush, and also returns, when the batch is
// allowed, which of its rows the server already held: reading them is
// part of the check, and the push uses the answer to skip work that only
// rows written before can need (see Reannounce). It returns nil rows,
// meaning "not read", when the check needed no read (an administrator,
// an empty batch).
func (r *Rules) CheckPushRows(ctx context.Context, q Queryer, who Who, changes []syncproto.Change) (HeldRows, error) {
	if who.Role == RoleAdmin || len(changes) == 0 {
		return nil, nil
	}
	type rowState struct {
		first    int    // index of the row's first change, for the error
		owner    string // the owner the batch gives the row, if it does
		hasOwner bool
	}
	rows := map[syncproto.RowKey]*rowState{}
	var order []syncproto.RowKey
	for i := range changes {
		c := &changes[i]
		p := r.policy(c.Table)
		if p.kind != kindOwned {
			what := "this table"
			switch p.kind {
			case kindStructure, kindCoordination, kindEnActivite:
				what = "reference and team data"
			}
			return nil, syncproto.Errorf(syncproto.CodeForbiddenScope,
				"change %d writes %s %s: %s is managed by administrators", i, c.Table, c.PK, what).
				With(syncproto.DetailIndex, i).With(syncproto.DetailTable, c.Table).With(syncproto.DetailPK, c.PK)
		}
		k := c.Row()
		st := rows[k]
		if st == nil {
			st = &rowState{first: i}
			rows[k] = st
			order = append(order, k)
		}
	}
	// Of several writes to the owner cell in one batch, the newest is the
	// one that stands.
	for k, i := range syncproto.NewestWrites(changes, func(string) (string, bool) { return OwnerColumn, true }) {
		rows[k].owner, rows[k].hasOwner = text(changes[i].Value), true
	}
	byTable := map[string][]string{}
	for _, k := range order {
		byTable[k.Table] = append(byTable[k.Table], k.PK)
	}
	held := map[syncproto.RowKey]heldRow{}
	for table, pks := range byTable {
		m, err := heldRows(ctx, q, table, pks)
		if err != nil {
			return nil, err
		}
		for pk, h := range m {
			held[syncproto.RowKey{Table: table, PK: pk}] = h
		}
	}
	me := who.UserID
	for _, k := range order {
		st := rows[k]
		h, exists := held[k]
		refuse := func(why string) error {
			return syncproto.Errorf(syncproto.CodeForbiddenScope, "change %d writes %s %s: %s", st.first, k.Table, k.PK, why).
				With(syncproto.DetailIndex, st.first).With(syncproto.DetailTable, k.Table).With(syncproto.DetailPK, k.PK)
		}
		switch {
		case exists && h.owner != me:
			return nil, refuse("the row belongs to someone else")
		case st.hasOwner && st.owner != me:
			return nil, refuse("a row cannot be handed to someone else; " + OwnerColumn + " must stay your user id")
		case !exists && !st.hasOwner:
			return nil, refuse("a new row must name its owner: set " + OwnerColumn + " to your user id")
		}
	}
	out := make(HeldRows, len(held))
	for k := range held {
		out[k] = true
	}
	return out, nil
}

type heldRow struct{ owner string }

// heldRowsSQL reads, for a table and a JSON array of primary keys, the
// owner cell of each row the server holds any cell of. Its text does not
// depend on the batch, so that the server can keep it prepared
// (PushQueries); the keys go in as one JSON argument rather than a list
// of placeholders, whose length would make every batch's text new.
const heldRowsSQL = `SELECT pk, MAX(CASE WHEN col = ? THEN val END) FROM _cells
	WHERE tbl = ? AND pk IN (SELECT value FROM json_each(?)) GROUP BY pk`

// PushQueries returns the text of the queries CheckPush runs, so that a
// caller can keep them prepared.
func PushQueries() []string { return []string{heldRowsSQL} }

// heldRows reads, for the rows of a table the server already has any cell
// of, the owner it holds ("" when that cell is missing or NULL).
func heldRows(ctx context.Context, q Queryer, table string, pks []string) (map[string]heldRow, error) {
	keys, err := json.Marshal(pks)
	if err != nil {
		return nil, fmt.Errorf("scope: read held rows of %s: %w", table, err)
	}
	rows, err := q.QueryContext(ctx, heldRowsSQL, OwnerColumn, table, string(keys))
	if err != nil {
		return nil, fmt.Errorf("scope: read held rows of %s: %w", table, err)
	}
	defer rows.Close()
	out := make(map[string]heldRow, len(pks))
	for rows.Next() {
		var pk string
		var owner any
		if err := rows.Scan(&pk, &owner); err != nil {
			return nil, fmt.Errorf("scope: read held rows of %s: %w", table, err)
		}
		out[pk] = heldRow{owner: text(owner)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scope: read held rows of %s: %w", table, err)
	}
	return out, nil
}
