package scope

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

// CheckPush refuses, with forbidden_scope, a batch that writes any row the
// principal may not write: a row of someone else, a row handed to
// someone else, a new row that names no owner, or reference and team
// data. The batch is judged against the rows as the server holds them (q
// inside the push's transaction); the first row refused is reported.
func (r *Rules) CheckPush(ctx context.Context, q Queryer, who Who, changes []syncproto.Change) error {
	_, err := r.CheckPushRows(ctx, q, who, changes)
	return err
}

// HeldRows names the rows of a batch of which the server held at least
// one cell before the batch, by (table, primary key).
type HeldRows map[syncproto.RowKey]bool

// CheckPushRows is CheckPush, and also returns, when the batch is
// allowed, which of its rows the server already held (see JudgePush).
func (r *Rules) CheckPushRows(ctx context.Context, q Queryer, who Who, changes []syncproto.Change) (HeldRows, error) {
	held, refused, err := r.JudgePush(ctx, q, who, changes)
	if err != nil {
		return nil, err
	}
	first := -1
	var firstErr *syncproto.Error
	for _, v := range refused {
		if first < 0 || v.First < first {
			first, firstErr = v.First, v.Err()
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return held, nil
}

// Refused is the verdict on one row of a batch that the principal may not
// write.
type Refused struct {
	Table, PK string
	First     int    // index of the row's first change in the batch
	Why       string // in English, for logs and the whole-batch error
	Reason    string // in French, for the conseillère
}

// Err is the verdict as the protocol's forbidden_scope error.
func (v Refused) Err() *syncproto.Error {
	return syncproto.Errorf(syncproto.CodeForbiddenScope, "change %d writes %s %s: %s", v.First, v.Table, v.PK, v.Why).
		With(syncproto.DetailIndex, v.First).With(syncproto.DetailTable, v.Table).With(syncproto.DetailPK, v.PK)
}

// JudgePush decides, row by row, which rows of a batch the principal may
// write, against the rows as the server holds them (q inside the push's
// transaction). It returns the rows the server already held (reading them
// is part of the check, and the push uses the answer to skip work that
// only rows written before can need, see Reannounce), or nil, meaning
// "not read", when the check needed no read (an administrator, an empty
// batch); and the rows refused, by (table, primary key).
func (r *Rules) JudgePush(ctx context.Context, q Queryer, who Who, changes []syncproto.Change) (HeldRows, map[syncproto.RowKey]Refused, error) {
	refused := map[syncproto.RowKey]Refused{}
	if who.Role == RoleAdmin || len(changes) == 0 {
		return nil, refused, nil
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
		k := c.Row()
		if _, out := refused[k]; out {
			continue
		}
		p := r.policy(c.Table)
		if p.kind != kindOwned {
			what, quoi := "this table", "cette table est réservée aux administrateurs"
			switch p.kind {
			case kindStructure, kindCoordination, kindEnActivite:
				what, quoi = "reference and team data", "les structures et les équipes sont gérées par les administrateurs"
			}
			refused[k] = Refused{Table: c.Table, PK: c.PK, First: i, Why: what + " is managed by administrators", Reason: quoi}
			continue
		}
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
		if st := rows[k]; st != nil { // nil: a row already refused above
			st.owner, st.hasOwner = text(changes[i].Value), true
		}
	}
	byTable := map[string][]string{}
	for _, k := range order {
		byTable[k.Table] = append(byTable[k.Table], k.PK)
	}
	held := map[syncproto.RowKey]heldRow{}
	for table, pks := range byTable {
		m, err := heldRows(ctx, q, table, pks)
		if err != nil {
			return nil, nil, err
		}
		for pk, h := range m {
			held[syncproto.RowKey{Table: table, PK: pk}] = h
		}
	}
	me := who.UserID
	for _, k := range order {
		st := rows[k]
		h, exists := held[k]
		refuse := func(why, reason string) {
			refused[k] = Refused{Table: k.Table, PK: k.PK, First: st.first, Why: why, Reason: reason}
		}
		switch {
		case exists && h.owner != me:
			refuse("the row belongs to someone else",
				"cette fiche appartient à une autre personne : seul·e son auteur·rice peut la modifier")
		case st.hasOwner && st.owner != me:
			refuse("a row cannot be handed to someone else; "+OwnerColumn+" must stay your user id",
				"une fiche ne peut pas être attribuée à quelqu'un d'autre : "+OwnerColumn+" doit être votre identifiant")
		case !exists && !st.hasOwner:
			refuse("a new row must name its owner: set "+OwnerColumn+" to your user id",
				"une nouvelle fiche doit indiquer à qui elle appartient : "+OwnerColumn+" doit être votre identifiant")
		}
	}
	out := make(HeldRows, len(held))
	for k := range held {
		out[k] = true
	}
	return out, refused, nil
}

type heldRow struct{ owner string }

// heldRowsSQL reads, for a table and a JSON array of primary keys, the
// owner cell of each row the server holds any cell of. Its text does not
// depend on the batch, so that the server can keep it prepared
// (PushQueries); the keys go in as one JSON argument rather than a list
// of placeholders, whose length would make every batch's text new.
//
// The owner is the one the row's version record carries (the merge keeps
// it equal to the owner column); the keys are turned into the form
// _rows.pk holds (replica.PKSQL).
var heldRowsSQL = `SELECT r.pk, o.owner FROM _rows r LEFT JOIN _owners o ON o.id = r.owner
	WHERE r.tbl = (SELECT id FROM _tables WHERE name = ?) AND r.pk IN (SELECT ` + replica.PKSQL("value") + ` FROM json_each(?))`

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
	rows, err := q.QueryContext(ctx, heldRowsSQL, table, string(keys))
	if err != nil {
		return nil, fmt.Errorf("scope: read held rows of %s: %w", table, err)
	}
	defer rows.Close()
	out := make(map[string]heldRow, len(pks))
	for rows.Next() {
		var pk any
		var owner sql.NullString
		if err := rows.Scan(&pk, &owner); err != nil {
			return nil, fmt.Errorf("scope: read held rows of %s: %w", table, err)
		}
		out[replica.PKText(pk)] = heldRow{owner: owner.String}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scope: read held rows of %s: %w", table, err)
	}
	return out, nil
}
