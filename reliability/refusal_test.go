package reliability

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

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
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{})
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
}
