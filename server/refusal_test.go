package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/syncproto"
)

// A batch with good rows and bad ones: the server applies the good ones,
// refuses each bad row alone with its code and a French reason, and a
// re-sent batch gets the same acknowledgement and the same refusals and
// applies nothing twice. A device that did not ask for row refusals (an
// older SDK) still gets the whole batch refused.
func TestPushRefusesRowsNotBatches(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		me := srv.AddUser(t, "claire@exemple.fr", auth.RoleConseiller, password)
		colleague := srv.AddUser(t, "paul@exemple.fr", auth.RoleConseiller, password)
		p := auth.Principal{UserID: me.ID, DeviceID: uuid.Must(uuid.NewV7()).String(), Role: auth.RoleConseiller}
		clock := syncproto.NewClock(time.Now, 0, 0)
		id := func() string { return uuid.Must(uuid.NewV7()).String() }
		var changes []syncproto.Change
		row := func(pk string, cols map[string]any) {
			names := make([]string, 0, len(cols))
			for c := range cols {
				names = append(names, c)
			}
			slices.Sort(names)
			for _, c := range names {
				changes = append(changes, syncproto.Change{Table: "activite", PK: pk, Column: c, Value: cols[c],
					Version: syncproto.Version{HLC: clock.Now(), Node: p.DeviceID}})
			}
		}
		good := []string{id(), id(), id()}
		for _, pk := range good {
			row(pk, map[string]any{"mediateur_id": me.ID, "type": "individuel", "date": "2026-03-02", "duree": 45, "type_lieu": "domicile", "commune": "Laval"})
		}
		theirs, ownerless, ruleBreak, typeBreak := id(), id(), id(), id()
		row(theirs, map[string]any{"mediateur_id": colleague.ID, "type": "individuel", "duree": 30})
		row(ownerless, map[string]any{"type": "individuel", "duree": 30})
		row(ruleBreak, map[string]any{"mediateur_id": me.ID, "type": "individuel", "duree": 5000})
		row(typeBreak, map[string]any{"mediateur_id": me.ID, "type": "individuel", "duree": "trente"})
		batch := &syncproto.Batch{ID: id(), Changes: changes}

		// An older SDK: the whole batch is refused, nothing applied.
		if _, err := srv.Exchange(ctx, p, &syncproto.SyncRequest{Push: batch, Clock: clock.Now()}); syncproto.CodeOf(err) == "" {
			t.Fatalf("an older device's batch with bad rows was not refused whole: %v", err)
		}
		var none int
		if err := srv.DB().R.QueryRow("SELECT COUNT(*) FROM _rows").Scan(&none); err != nil || none != 0 {
			t.Fatalf("the whole-batch refusal left %d cells (%v)", none, err)
		}
		batch = &syncproto.Batch{ID: id(), Changes: batch.Changes}

		first, err := srv.Exchange(ctx, p, &syncproto.SyncRequest{Push: batch, Clock: clock.Now(), RefuseRows: true})
		if err != nil {
			t.Fatal(err)
		}
		if first.Ack != batch.ID || first.Applied != 3*6 {
			t.Fatalf("ack %q applied %d, want the batch acknowledged with its 18 good cells applied", first.Ack, first.Applied)
		}
		want := map[string]syncproto.Code{theirs: syncproto.CodeForbiddenScope, ownerless: syncproto.CodeForbiddenScope,
			ruleBreak: syncproto.CodeInvalidRow, typeBreak: syncproto.CodeBadValue}
		if len(first.Refused) != len(want) {
			t.Fatalf("%d rows refused, want %d: %+v", len(first.Refused), len(want), first.Refused)
		}
		for _, rf := range first.Refused {
			if want[rf.PK] != rf.Code || rf.Reason == "" || len(rf.Columns) == 0 || len(rf.Current) != 0 {
				t.Errorf("refusal of %s: %+v, want code %s, a French reason, its columns and no server version (new row)", rf.PK, rf, want[rf.PK])
			}
		}
		count := func() (rows, cells int) {
			t.Helper()
			if err := srv.DB().R.QueryRow("SELECT COUNT(*) FROM activite").Scan(&rows); err != nil {
				t.Fatal(err)
			}
			cells = relaistest.CountCells(t, srv.DB().R, nil)
			return rows, cells
		}
		rows, cells := count()
		if rows != 3 {
			t.Fatalf("the server holds %d activities, want the 3 good ones", rows)
		}
		again, err := srv.Exchange(ctx, p, &syncproto.SyncRequest{Push: batch, Clock: clock.Now(), RefuseRows: true})
		if err != nil {
			t.Fatal(err)
		}
		if again.Ack != batch.ID || again.Applied != first.Applied || !slices.EqualFunc(again.Refused, first.Refused, sameRefusal) {
			t.Fatalf("a re-sent batch got another answer: %+v then %+v", first, again)
		}
		if r2, c2 := count(); r2 != rows || c2 != cells {
			t.Fatalf("a re-sent batch changed the server: %d rows %d cells, then %d %d", rows, cells, r2, c2)
		}

		// An edit of a row the server holds, refused: the refusal carries the
		// server's version of the refused cell, so the device can put it back.
		edit := &syncproto.Batch{ID: id(), Changes: []syncproto.Change{{Table: "activite", PK: good[0], Column: "duree", Value: 9999,
			Version: syncproto.Version{HLC: clock.Now(), Node: p.DeviceID}}}}
		resp, err := srv.Exchange(ctx, p, &syncproto.SyncRequest{Push: edit, Clock: clock.Now(), RefuseRows: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Refused) != 1 || len(resp.Refused[0].Current) != 1 || syncproto.ValueText(resp.Refused[0].Current[0].Value) != "45" ||
			resp.Refused[0].Rule != "duree_activite" {
			t.Fatalf("refused edit: %+v, want duree_activite with the server's 45", resp.Refused)
		}
	})
}

func sameRefusal(a, b syncproto.Refusal) bool {
	return a.Table == b.Table && a.PK == b.PK && a.Code == b.Code && a.Reason == b.Reason && a.Rule == b.Rule &&
		slices.Equal(a.Columns, b.Columns) && len(a.Current) == len(b.Current)
}

// An erasure that travels with an edit breaking a rule (an older app
// writing a birth year the rules refuse) is refused as one row; the
// server still completes the erasure, since erasure wins whatever comes
// with it, and the refusal hands the device the erased row back.
func TestRefusedRowStillErases(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		me := srv.AddUser(t, "claire@exemple.fr", auth.RoleConseiller, password)
		p := auth.Principal{UserID: me.ID, DeviceID: uuid.Must(uuid.NewV7()).String(), Role: auth.RoleConseiller}
		clock := syncproto.NewClock(time.Now, 0, 0)
		pk := uuid.Must(uuid.NewV7()).String()
		cell := func(col string, v any) syncproto.Change {
			return syncproto.Change{Table: "beneficiaire", PK: pk, Column: col, Value: v,
				Version: syncproto.Version{HLC: clock.Now(), Node: p.DeviceID}}
		}
		create := &syncproto.Batch{ID: uuid.Must(uuid.NewV7()).String(), Changes: []syncproto.Change{
			cell("mediateur_id", me.ID), cell("anonyme", int64(0)), cell("prenom", "Odette"), cell("nom", "Martin"),
			cell("telephone", "0611223344"),
		}}
		if res, err := srv.Exchange(ctx, p, &syncproto.SyncRequest{Push: create, Clock: clock.Now(), RefuseRows: true}); err != nil || len(res.Refused) != 0 {
			t.Fatalf("creating the beneficiary: %v %+v", err, res)
		}
		erase := &syncproto.Batch{ID: uuid.Must(uuid.NewV7()).String(), Changes: []syncproto.Change{
			cell("anonyme", int64(1)), cell("prenom", nil), cell("nom", nil), cell("telephone", nil),
			cell("annee_naissance", int64(1850)),
		}}
		res, err := srv.Exchange(ctx, p, &syncproto.SyncRequest{Push: erase, Clock: clock.Now(), RefuseRows: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Refused) != 1 || res.Refused[0].Code != syncproto.CodeInvalidRow {
			t.Fatalf("refusals %+v, want the row refused for its birth year", res.Refused)
		}
		var anonyme int
		var personal int
		if err := srv.DB().R.QueryRow(`SELECT COALESCE(anonyme, 0), CASE WHEN prenom IS NULL THEN 0 ELSE 1 END + CASE WHEN nom IS NULL THEN 0 ELSE 1 END + CASE WHEN telephone IS NULL THEN 0 ELSE 1 END
			FROM beneficiaire WHERE id = ?`, pk).Scan(&anonyme, &personal); err != nil {
			t.Fatal(err)
		}
		if anonyme != 1 || personal != 0 {
			t.Fatalf("after a refused row that erased: anonyme %d, %d personal values left; the erasure must be completed", anonyme, personal)
		}
		current := map[string]any{}
		for _, c := range res.Refused[0].Current {
			current[c.Column] = c.Value
		}
		if v, ok := current["prenom"]; !ok || v != nil {
			t.Fatalf("the refusal's current values %v do not hand back the erased first name", current)
		}
		var birth any
		if err := srv.DB().R.QueryRow("SELECT annee_naissance FROM beneficiaire WHERE id = ?", pk).Scan(&birth); err != nil || birth != nil {
			t.Fatalf("the refused birth year reached the server: %v (%v)", birth, err)
		}
	})
}
