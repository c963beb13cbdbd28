package reliability

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

func write(t *testing.T, r *device.Replica, q string, args ...any) {
	t.Helper()
	if _, err := r.DB().ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// The field week of issue 12. A conseillère's new tablet records, before
// it is even logged in, three home visits and two activities that the
// server cannot take: one carrying a colleague's mediateur_id, one with
// none (the tablet did not know her yet, so it could neither check nor
// fill them). At the first sync the three visits reach the server and
// stay on her tablet; the two bad rows are refused alone, listed by
// `relais device rejected` with French reasons, and each value she typed
// is on the server or in that list. She fixes one and sends it again: it
// syncs. She gives up the other: the server's state wins on every
// replica.
func TestFieldWeek(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		claire := srv.AddUser(t, "claire@exemple.fr", auth.RoleConseiller, "mot-de-passe-claire")
		paul := srv.AddUser(t, "paul@exemple.fr", auth.RoleConseiller, "mot-de-passe-paul")
		tablet := relaistest.OpenDevice(t, "tablette", device.Options{})
		id := func() string { return uuid.Must(uuid.NewV7()).String() }
		visits := []string{id(), id(), id()}
		for i, v := range visits {
			write(t, tablet, `INSERT INTO activite (id, mediateur_id, type, date, duree, type_lieu, commune) VALUES (?, ?, 'individuel', ?, 45, 'domicile', 'Laval')`,
				v, claire.ID, fmt.Sprintf("2026-03-0%d", i+2))
		}
		theirs, ownerless := id(), id()
		write(t, tablet, `INSERT INTO activite (id, mediateur_id, type, date, duree, notes) VALUES (?, ?, 'individuel', '2026-03-05', 30, 'atelier CV')`, theirs, paul.ID)
		write(t, tablet, `INSERT INTO activite (id, type, date, duree, notes) VALUES (?, 'individuel', '2026-03-06', 60, 'démarches CAF')`, ownerless)
		typed := map[string]map[string]any{
			theirs:    {"mediateur_id": paul.ID, "type": "individuel", "date": "2026-03-05", "duree": int64(30), "notes": "atelier CV"},
			ownerless: {"type": "individuel", "date": "2026-03-06", "duree": int64(60), "notes": "démarches CAF"},
		}
		if err := tablet.Login(ctx, srv.URL, claire.Email, "mot-de-passe-claire"); err != nil {
			t.Fatal(err)
		}
		rep, err := tablet.Sync(ctx)
		if err != nil || rep.Rejected != 9 {
			t.Fatalf("first sync: %+v, %v; want the sync to succeed with the 9 changes of the two bad rows refused", rep, err)
		}
		sdb := srv.DB().R
		for _, v := range visits {
			var owner string
			if err := sdb.QueryRowContext(ctx, "SELECT mediateur_id FROM activite WHERE id = ?", v).Scan(&owner); err != nil || owner != claire.ID {
				t.Fatalf("visit %s on the server: owner %q, %v", v, owner, err)
			}
		}
		var local int
		if err := tablet.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM activite").Scan(&local); err != nil || local != 3 {
			t.Fatalf("her tablet holds %d activities (%v), want the three visits (the refused rows put back as the server holds them: absent)", local, err)
		}

		// Listed, in French, with her values; nothing lost.
		out := relaisCmd(t, "", "device", "rejected", "--db", tablet.Path())
		t.Logf("relais device rejected:\n%s", out)
		for _, want := range []string{theirs, ownerless, "appartient", "doit indiquer", "atelier CV", "démarches CAF", "--retry"} {
			if !strings.Contains(out, want) {
				t.Errorf("device rejected does not show %q:\n%s", want, out)
			}
		}
		if !regexp.MustCompile(`\d\d/\d\d/\d{4} à \d\d:\d\d`).MatchString(out) {
			t.Errorf("device rejected shows no date:\n%s", out)
		}
		list, err := tablet.Rejected(ctx)
		if err != nil {
			t.Fatal(err)
		}
		kept := map[string]map[string]any{}
		ids := map[string]int64{}
		for _, j := range list {
			if kept[j.PK] == nil {
				kept[j.PK] = map[string]any{}
			}
			kept[j.PK][j.Column] = j.Value
			ids[j.PK] = j.ID
			if j.Reason == "" || j.Code != "forbidden_scope" {
				t.Errorf("refused change %+v has no French reason or the wrong code", j)
			}
		}
		for pk, cols := range typed {
			for col, v := range cols {
				if fmt.Sprint(kept[pk][col]) != fmt.Sprint(v) {
					t.Errorf("%s.%s = %v, which she typed, is neither on the server nor in her rejected list (%v)", pk, col, v, kept[pk][col])
				}
			}
		}
		st, err := tablet.Status(ctx)
		if err != nil || st.Rejected != 9 || st.Cursor == 0 {
			t.Fatalf("status: %+v, %v", st, err)
		}
		status := relaisCmd(t, "", "device", "status", "--db", tablet.Path())
		if !strings.Contains(status, "relais device rejected") {
			t.Errorf("device status gives no hint to the rejected list:\n%s", status)
		}

		// The colleague's row was hers after all: fixed and sent again.
		relaisCmd(t, "", "device", "rejected", "--db", tablet.Path(), "--retry", fmt.Sprint(ids[theirs]), "--set", "mediateur_id="+claire.ID)
		// The other one she gives up.
		relaisCmd(t, "", "device", "rejected", "--db", tablet.Path(), "--dismiss", fmt.Sprint(ids[ownerless]))
		rep, err = tablet.Sync(ctx)
		if err != nil || rep.Rejected != 0 || rep.Pushed == 0 {
			t.Fatalf("sync after the fix: %+v, %v", rep, err)
		}
		var notes string
		if err := sdb.QueryRowContext(ctx, "SELECT notes FROM activite WHERE id = ? AND mediateur_id = ?", theirs, claire.ID).Scan(&notes); err != nil || notes != "atelier CV" {
			t.Fatalf("the fixed row on the server: %q, %v", notes, err)
		}
		if left, err := tablet.Rejected(ctx); err != nil || len(left) != 0 {
			t.Fatalf("rejected list after retry and dismiss: %+v, %v", left, err)
		}
		phone := srv.LoggedInDevice(t, "telephone", claire.Email, "mot-de-passe-claire")
		if _, err := phone.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		sameAsServer(t, srv, map[string]*device.Replica{"tablette": tablet, "téléphone": phone})
	})
}

// What the device can know it catches at write time, with a French
// message, so the write never leaves the tablet: it learnt its account's
// id and role at login. A conseillère's row must be hers (an empty owner
// is filled with her id); a coordinator may read her team's rows but not
// write them; reference tables are the administrators'; an activity
// dated far in the future is a typo; the domain rules stay. A device
// that does not know its account yet checks nothing of the owner, and an
// administrator writes anything.
func TestDeviceCatchesWhatItCanKnow(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		claire := srv.AddUser(t, "claire@exemple.fr", auth.RoleConseiller, "mot-de-passe-claire")
		paul := srv.AddUser(t, "paul@exemple.fr", auth.RoleConseiller, "mot-de-passe-paul")
		coord := srv.AddUser(t, "coord@exemple.fr", auth.RoleCoordinateur, "mot-de-passe-coord")
		srv.AddUser(t, "admin@exemple.fr", auth.RoleAdmin, "mot-de-passe-admin")
		if err := srv.WriteRow(ctx, "coordination", uuid.Must(uuid.NewV7()).String(), map[string]any{"coordinateur_id": coord.ID, "mediateur_id": claire.ID}); err != nil {
			t.Fatal(err)
		}
		tablet := srv.LoggedInDevice(t, "tablette", claire.Email, "mot-de-passe-claire")
		team := uuid.Must(uuid.NewV7()).String()
		write(t, tablet, `INSERT INTO activite (id, mediateur_id, type, date, duree) VALUES (?, ?, 'individuel', '2026-03-02', 45)`, team, claire.ID)
		if _, err := tablet.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		coordDev := srv.LoggedInDevice(t, "coordinatrice", coord.Email, "mot-de-passe-coord")
		if _, err := coordDev.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		admin := srv.LoggedInDevice(t, "admin", "admin@exemple.fr", "mot-de-passe-admin")
		fresh := relaistest.OpenDevice(t, "neuve", device.Options{})
		future := time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
		newID := func() string { return uuid.Must(uuid.NewV7()).String() }
		cases := []struct {
			name    string
			dev     *device.Replica
			query   string
			args    []any
			refusal string // a piece of the French message; "" when allowed
		}{
			{"conseillère: a row naming a colleague", tablet, `INSERT INTO activite (id, mediateur_id, type, duree) VALUES (?, ?, 'individuel', 30)`, []any{newID(), paul.ID}, "doit être à votre nom"},
			{"conseillère: her own row", tablet, `INSERT INTO activite (id, mediateur_id, type, duree) VALUES (?, ?, 'individuel', 30)`, []any{newID(), claire.ID}, ""},
			{"conseillère: a row naming nobody (filled with her id)", tablet, `INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 30)`, []any{newID()}, ""},
			{"conseillère: handing her row to a colleague", tablet, `UPDATE activite SET mediateur_id = ? WHERE id = ?`, []any{paul.ID, team}, "attribuée à quelqu'un d'autre"},
			{"conseillère: a structure", tablet, `INSERT INTO structure (id, nom) VALUES (?, 'Espace numérique')`, []any{newID()}, "gérées par les administrateurs"},
			{"conseillère: an activity dated next year", tablet, `INSERT INTO activite (id, type, date, duree) VALUES (?, 'individuel', ?, 30)`, []any{newID(), future}, "dans le futur"},
			{"conseillère: a domain rule", tablet, `INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 5000)`, []any{newID()}, "rule duree_activite"},
			{"coordinator: editing her team's activity", coordDev, `UPDATE activite SET duree = 90 WHERE id = ?`, []any{team}, "appartient à une autre personne"},
			{"coordinator: deleting her team's activity", coordDev, `DELETE FROM activite WHERE id = ?`, []any{team}, "appartient à une autre personne"},
			{"coordinator: her own activity", coordDev, `INSERT INTO activite (id, type, duree) VALUES (?, 'collectif', 60)`, []any{newID()}, ""},
			{"coordinator: a coordination", coordDev, `INSERT INTO coordination (id, coordinateur_id, mediateur_id) VALUES (?, ?, ?)`, []any{newID(), coord.ID, paul.ID}, "gérées par les administrateurs"},
			{"administrator: anyone's row", admin, `INSERT INTO activite (id, mediateur_id, type, duree) VALUES (?, ?, 'individuel', 30)`, []any{newID(), paul.ID}, ""},
			{"device not logged in yet: no owner check", fresh, `INSERT INTO activite (id, mediateur_id, type, duree) VALUES (?, ?, 'individuel', 30)`, []any{newID(), paul.ID}, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := c.dev.DB().ExecContext(ctx, c.query, c.args...)
				switch {
				case c.refusal == "" && err != nil:
					t.Fatalf("refused: %v", err)
				case c.refusal != "" && (err == nil || !strings.Contains(err.Error(), c.refusal)):
					t.Fatalf("got %v, want a refusal saying %q", err, c.refusal)
				}
			})
		}
		var filled int
		if err := tablet.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM activite WHERE mediateur_id IS NULL").Scan(&filled); err != nil || filled != 0 {
			t.Fatalf("%d of her activities have no owner (%v): an empty owner must be filled with her id", filled, err)
		}
		// What the device accepted, the server accepts: nothing refused.
		for _, d := range []*device.Replica{tablet, coordDev, admin} {
			if rep, err := d.Sync(ctx); err != nil || rep.Rejected != 0 {
				list, _ := d.Rejected(ctx)
				t.Fatalf("sync of %s: %+v, %v: %+v", d.Node(), rep, err, list)
			}
		}
	})
}

// A coordinator's edit of a team row is refused by the server (her
// tablet, logged in with an older app, did not know her role and let it
// through). The refusal costs no download: the refused cell is put back
// from the answer, the cursor stays, and the next sync transfers only the
// cells written since, not the département.
func TestCoordinatorRefusalCostsNoDownload(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		claire := srv.AddUser(t, "claire@exemple.fr", auth.RoleConseiller, "mot-de-passe-claire")
		coord := srv.AddUser(t, "coord@exemple.fr", auth.RoleCoordinateur, "mot-de-passe-coord")
		if err := srv.WriteRow(ctx, "coordination", uuid.Must(uuid.NewV7()).String(), map[string]any{"coordinateur_id": coord.ID, "mediateur_id": claire.ID}); err != nil {
			t.Fatal(err)
		}
		tablet := srv.LoggedInDevice(t, "tablette", claire.Email, "mot-de-passe-claire")
		insert := func(n int) []string {
			var ids []string
			tx, err := tablet.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				id := uuid.Must(uuid.NewV7()).String()
				if _, err := tx.ExecContext(ctx, `INSERT INTO activite (id, type, date, duree, type_lieu, commune, notes) VALUES (?, 'individuel', '2026-03-02', 45, 'domicile', 'Laval', 'visite')`, id); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if rep, err := tablet.Sync(ctx); err != nil || rep.Rejected != 0 {
				t.Fatalf("her sync: %+v, %v", rep, err)
			}
			return ids
		}
		team := insert(2000)
		coordDev := srv.LoggedInDevice(t, "coordinatrice", coord.Email, "mot-de-passe-coord")
		full, err := coordDev.Sync(ctx)
		if err != nil || full.Pulled == 0 {
			t.Fatalf("first sync: %+v, %v", full, err)
		}
		write(t, coordDev, "UPDATE _device SET role = NULL") // an older app's login
		write(t, coordDev, "UPDATE activite SET duree = 90 WHERE id = ?", team[0])
		before, err := coordDev.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		refused, err := coordDev.Sync(ctx)
		if err != nil || refused.Rejected != 1 {
			t.Fatalf("sync with the refused edit: %+v, %v", refused, err)
		}
		after, err := coordDev.Status(ctx)
		if err != nil || after.Cursor < before.Cursor {
			t.Fatalf("cursor went from %d to %d (%v): a refusal must not move it back", before.Cursor, after.Cursor, err)
		}
		var duree int
		if err := coordDev.DB().QueryRowContext(ctx, "SELECT duree FROM activite WHERE id = ?", team[0]).Scan(&duree); err != nil || duree != 45 {
			t.Fatalf("the refused edit on her tablet: duree %d (%v), want the server's 45 back", duree, err)
		}
		fresh := insert(2)
		want := relaistest.CountCells(t, srv.DB().R, func(c relaistest.Cell) bool {
			return c.Table == "activite" && c.Column != "notes" && (c.PK == fresh[0] || c.PK == fresh[1])
		})
		next, err := coordDev.Sync(ctx)
		if err != nil || next.Pulled != want {
			t.Fatalf("next sync: %+v, %v; want exactly the %d new cells", next, err, want)
		}
		if next.BytesDown*20 > full.BytesDown {
			t.Fatalf("next sync downloaded %d bytes, the first one %d: more than the new cells", next.BytesDown, full.BytesDown)
		}
		t.Logf("département of 2,000 activities: %d cells, %d bytes down; the refused edit's sync: %d bytes down; the next sync: %d cells, %d bytes down",
			full.Pulled, full.BytesDown, refused.BytesDown, next.Pulled, next.BytesDown)
	})
}

// The status says what waits, what was refused (pointing to the list),
// and the last error in French: here a server that cannot be reached.
func TestStatusSpeaksFrench(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		claire := srv.AddUser(t, "claire@exemple.fr", auth.RoleConseiller, "mot-de-passe-claire")
		tablet := srv.LoggedInDevice(t, "tablette", claire.Email, "mot-de-passe-claire")
		write(t, tablet, `INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 30)`, uuid.Must(uuid.NewV7()).String())
		write(t, tablet, "UPDATE _device SET server = ?", "http://"+freeAddr(t))
		if _, err := tablet.Sync(ctx); err == nil {
			t.Fatal("a sync with nobody listening succeeded")
		}
		st, err := tablet.Status(ctx)
		if err != nil || st.Pending == 0 || !strings.Contains(st.LastError, "serveur injoignable") {
			t.Fatalf("status: %+v, %v; want the write waiting and the error in French", st, err)
		}
		out := relaisCmd(t, "", "device", "status", "--db", tablet.Path())
		for _, want := range []string{"Modifications en attente", "serveur injoignable"} {
			if !strings.Contains(out, want) {
				t.Errorf("device status does not say %q:\n%s", want, out)
			}
		}
	})
}
