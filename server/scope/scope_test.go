package scope_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/syncproto"
)

const pw = "un-mot-de-passe-solide"

func id() string { return uuid.Must(uuid.NewV7()).String() }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, r *device.Replica, q string, args ...any) {
	t.Helper()
	if _, err := r.DB().Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func syncOK(t *testing.T, r *device.Replica) device.Report {
	t.Helper()
	rep, err := r.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return rep
}

func countIn(t *testing.T, r *device.Replica, q string, args ...any) int {
	t.Helper()
	var n int
	must(t, r.DB().QueryRow(q, args...).Scan(&n))
	return n
}

// pullAll pulls everything a token may see, from cursor 0, as raw
// exchanges: the changes and the exact bytes that crossed the wire.
func pullAll(t *testing.T, srv *relaistest.Server, token string) ([]syncproto.Change, []byte) {
	t.Helper()
	var all []syncproto.Change
	var wire []byte
	cursor := int64(0)
	for range 100 {
		status, raw := srv.PostJSON(t, "/v1/sync", token, map[string]any{"cursor": cursor, "limit": 50})
		if status != 200 {
			t.Fatalf("pull: %d %s", status, raw)
		}
		wire = append(wire, raw...)
		resp, err := syncproto.DecodeResponse(raw)
		must(t, err)
		all = append(all, resp.Changes...)
		cursor = resp.Cursor
		if !resp.More {
			return all, wire
		}
	}
	t.Fatal("pull never ended")
	return nil, nil
}

// rowsOf lists the distinct rows of a table among changes.
func rowsOf(changes []syncproto.Change, table string) []string {
	var out []string
	for _, c := range changes {
		if c.Table == table && !slices.Contains(out, c.PK) {
			out = append(out, c.PK)
		}
	}
	slices.Sort(out)
	return out
}

// push sends one batch as a device and returns the status and error code.
func push(t *testing.T, srv *relaistest.Server, token, node string, cells ...[4]any) (int, string) {
	t.Helper()
	hlc := syncproto.FromTime(time.Now())
	var changes []map[string]any
	for _, c := range cells {
		changes = append(changes, map[string]any{"tbl": c[0], "pk": c[1], "col": c[2], "val": c[3], "ver": []any{hlc, node}})
	}
	status, raw := srv.PostJSON(t, "/v1/sync", token, map[string]any{
		"push": map[string]any{"id": id(), "changes": changes}, "cursor": 0, "clock": hlc,
	})
	return status, relaistest.ErrorCode(raw)
}

func tokenOf(t *testing.T, r *device.Replica) string {
	t.Helper()
	var tok string
	must(t, r.DB().QueryRow("SELECT access_token FROM _device WHERE id = 1").Scan(&tok))
	return tok
}

// team is a small département: two conseillers (A and B), a coordinator
// (C) who follows A in March 2026, a structure where A works and one
// where nobody does.
type team struct {
	srv            *relaistest.Server
	a, b, c, admin auth.User
	ra, rb         *device.Replica
	s1, s2         string
	benA, benB     string
	actIn, actOut  string
}

// Personal values A recorded about a beneficiary; none may reach anyone
// but A.
var personal = []string{"Josiane", "Secretnom", "0611223344", "josiane@exemple.fr", "3 rue des Lilas", "suivie pour son dossier CAF"}

func newTeam(t *testing.T, e relaistest.Engine) *team {
	ctx := context.Background()
	srv := e.Start(t, server.Config{})
	tm := &team{srv: srv, s1: id(), s2: id(), benA: id(), benB: id(), actIn: id(), actOut: id()}
	tm.a = srv.AddUser(t, "a@exemple.fr", auth.RoleConseiller, pw)
	tm.b = srv.AddUser(t, "b@exemple.fr", auth.RoleConseiller, pw)
	tm.c = srv.AddUser(t, "c@exemple.fr", auth.RoleCoordinateur, pw)
	tm.admin = srv.AddUser(t, "admin@exemple.fr", auth.RoleAdmin, pw)
	must(t, srv.WriteRow(ctx, "structure", tm.s1, map[string]any{"nom": "France Services Laval", "commune": "Laval"}))
	must(t, srv.WriteRow(ctx, "structure", tm.s2, map[string]any{"nom": "Médiathèque d'Ernée", "commune": "Ernée"}))
	must(t, srv.WriteRow(ctx, "mediateur_en_activite", id(), map[string]any{"mediateur_id": tm.a.ID, "structure_id": tm.s1, "debut": "2025-01-01"}))
	must(t, srv.WriteRow(ctx, "coordination", id(), map[string]any{"coordinateur_id": tm.c.ID, "mediateur_id": tm.a.ID, "debut": "2026-03-01", "fin": "2026-03-31"}))

	tm.ra = srv.LoggedInDevice(t, "a", tm.a.Email, pw)
	tm.rb = srv.LoggedInDevice(t, "b", tm.b.Email, pw)
	run(t, tm.ra, `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom, telephone, email, adresse, notes, genre, annee_naissance, commune)
		VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, 'feminin', 1948, 'Laval')`, append([]any{tm.benA, tm.a.ID}, anySlice(personal)...)...)
	for _, act := range [][2]string{{tm.actIn, "2026-03-10"}, {tm.actOut, "2026-04-15"}} {
		run(t, tm.ra, `INSERT INTO activite (id, mediateur_id, type, date, duree, type_lieu, commune, notes)
			VALUES (?, ?, 'individuel', ?, 45, 'domicile', 'Laval', 'Mme Secretnom, voisine du 2e')`, act[0], tm.a.ID, act[1])
	}
	run(t, tm.ra, "INSERT INTO accompagnement (id, mediateur_id, activite_id, beneficiaire_id) VALUES (?, ?, ?, ?)", id(), tm.a.ID, tm.actIn, tm.benA)
	run(t, tm.rb, `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom, genre) VALUES (?, ?, 0, 'Bernard', 'Autrenom', 'masculin')`, tm.benB, tm.b.ID)
	syncOK(t, tm.ra)
	syncOK(t, tm.rb)
	return tm
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func TestConseillerSeesOnlyTheirOwnRows(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		t.Parallel()
		tm := newTeam(t, e)
		// B's tablet received nothing of A's.
		for table, pk := range map[string]string{"beneficiaire": tm.benA, "activite": tm.actIn} {
			if n := countIn(t, tm.rb, "SELECT COUNT(*) FROM "+table+" WHERE id = ?", pk); n != 0 {
				t.Errorf("B's device holds A's %s", table)
			}
		}
		// On the wire, from a second device of B's (its own cells are not
		// echoed to the device that wrote them): B's rows arrive, A's do not.
		b2 := tm.srv.LoginHTTP(t, tm.b.Email, pw, id())
		changes, wire := pullAll(t, tm.srv, b2.AccessToken)
		if got := rowsOf(changes, "beneficiaire"); !slices.Equal(got, []string{tm.benB}) {
			t.Errorf("B pulled beneficiaries %v, want only B's %s", got, tm.benB)
		}
		if got := rowsOf(changes, "activite"); len(got) != 0 {
			t.Errorf("B pulled activities %v", got)
		}
		if got := rowsOf(changes, "structure"); len(got) != 0 {
			t.Errorf("B works nowhere but pulled structures %v", got)
		}
		for _, v := range personal {
			if bytes.Contains(wire, []byte(v)) {
				t.Errorf("%q went on the wire to B", v)
			}
		}
		// A's second device gets A's rows and the structure where A works,
		// not the other one.
		a2 := tm.srv.LoginHTTP(t, tm.a.Email, pw, id())
		changes, _ = pullAll(t, tm.srv, a2.AccessToken)
		if got := rowsOf(changes, "structure"); !slices.Equal(got, []string{tm.s1}) {
			t.Errorf("A pulled structures %v, want only %s", got, tm.s1)
		}
		if got := rowsOf(changes, "activite"); len(got) != 2 {
			t.Errorf("A pulled %d of A's 2 activities", len(got))
		}
		// An admin sees everything.
		adm := tm.srv.LoginHTTP(t, tm.admin.Email, pw, id())
		changes, wire = pullAll(t, tm.srv, adm.AccessToken)
		if len(rowsOf(changes, "beneficiaire")) != 2 || len(rowsOf(changes, "structure")) != 2 || !bytes.Contains(wire, []byte("Josiane")) {
			t.Error("the admin does not see every row")
		}
	})
}

func TestPushOutsideScopeIsRefusedWhole(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		t.Parallel()
		tm := newTeam(t, e)
		ta, tb := tokenOf(t, tm.ra), tokenOf(t, tm.rb)
		na, nb := tm.ra.Node(), tm.rb.Node()
		nc := id()
		tcoord := tm.srv.LoginHTTP(t, tm.c.Email, pw, nc).AccessToken
		fresh := id()
		cases := []struct {
			name  string
			token string
			node  string
			cells [][4]any
		}{
			{"B writes into A's activity", tb, nb, [][4]any{{"activite", tm.actIn, "duree", 120}}},
			{"A's coordinator writes into A's activity", tcoord, nc, [][4]any{{"activite", tm.actIn, "duree", 120}}},
			{"A's coordinator restores a personal column", tcoord, nc, [][4]any{{"beneficiaire", tm.benA, "nom", "Autre"}}},
			{"B deletes A's beneficiary", tb, nb, [][4]any{{"beneficiaire", tm.benA, "_deleted", 1}}},
			{"B claims A's beneficiary", tb, nb, [][4]any{{"beneficiaire", tm.benA, "mediateur_id", tm.b.ID}}},
			{"A hands an activity to B", ta, na, [][4]any{{"activite", tm.actIn, "mediateur_id", tm.b.ID}}},
			{"A clears an activity's owner", ta, na, [][4]any{{"activite", tm.actIn, "mediateur_id", nil}}},
			{"A creates a row for B", ta, na, [][4]any{{"activite", fresh, "mediateur_id", tm.b.ID}, {"activite", fresh, "duree", 30}}},
			{"A creates a row naming no owner", ta, na, [][4]any{{"activite", fresh, "duree", 30}}},
			{"A edits a structure", ta, na, [][4]any{{"structure", tm.s1, "nom", "Renommée"}}},
			{"A adds a coordination", ta, na, [][4]any{{"coordination", fresh, "coordinateur_id", tm.a.ID}}},
			{"A makes herself work elsewhere", ta, na, [][4]any{{"mediateur_en_activite", fresh, "mediateur_id", tm.a.ID}}},
			{"one good change, one bad: whole batch refused", ta, na, [][4]any{
				{"activite", tm.actOut, "duree", 90}, {"beneficiaire", tm.benB, "notes", "vu"}}},
		}
		var state [2]int
		snapshot := func() [2]int {
			var s [2]int
			must(t, tm.srv.DB().R.QueryRow("SELECT COUNT(*), COALESCE(SUM(seq), 0) FROM _rows").Scan(&s[0], &s[1]))
			return s
		}
		state = snapshot()
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				status, code := push(t, tm.srv, tc.token, tc.node, tc.cells...)
				if status != 403 || code != string(syncproto.CodeForbiddenScope) {
					t.Fatalf("got %d %q, want 403 forbidden_scope", status, code)
				}
				if snapshot() != state {
					t.Fatal("a refused batch changed the stored cells")
				}
			})
		}
		// The control: A may edit her own row. Her tablet, which knows her
		// id and role, refuses at write time, in French, to hand a row to
		// someone else; a tablet that does not know them (logged in with an
		// older app) lets the write through, the server refuses that row, and
		// the SDK sets it aside instead of retrying it for ever.
		if status, code := push(t, tm.srv, ta, na, [4]any{"activite", tm.actOut, "duree", 90}); status != 200 {
			t.Fatalf("A editing her own activity: %d %s", status, code)
		}
		if _, err := tm.ra.DB().Exec("UPDATE activite SET mediateur_id = ? WHERE id = ?", tm.b.ID, tm.actIn); err == nil || !strings.Contains(err.Error(), "attribuée à quelqu'un d'autre") {
			t.Fatalf("handing a row to B on A's tablet: %v, want a French refusal at write time", err)
		}
		run(t, tm.ra, "UPDATE _device SET role = NULL")
		run(t, tm.ra, "UPDATE activite SET mediateur_id = ? WHERE id = ?", tm.b.ID, tm.actIn)
		rep, err := tm.ra.Sync(context.Background())
		if err != nil || rep.Rejected == 0 {
			t.Fatalf("moving a row out of scope through the SDK: %+v, %v", rep, err)
		}
		var owner string
		must(t, tm.srv.DB().R.QueryRow("SELECT mediateur_id FROM activite WHERE id = ?", tm.actIn).Scan(&owner))
		if owner != tm.a.ID {
			t.Fatal("the row moved out of A's scope on the server")
		}
	})
}

func TestCoordinatorSeesTeamActivityWithoutPersonalData(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		t.Parallel()
		tm := newTeam(t, e)
		ctok := tm.srv.LoginHTTP(t, tm.c.Email, pw, id()).AccessToken
		changes, wire := pullAll(t, tm.srv, ctok)
		if got := rowsOf(changes, "activite"); !slices.Equal(got, []string{tm.actIn}) {
			t.Errorf("coordinator pulled activities %v, want only the one dated inside the coordination %s", got, tm.actIn)
		}
		if got := rowsOf(changes, "beneficiaire"); !slices.Equal(got, []string{tm.benA}) {
			t.Errorf("coordinator pulled beneficiaries %v, want A's %s", got, tm.benA)
		}
		if got := rowsOf(changes, "structure"); !slices.Equal(got, []string{tm.s1}) {
			t.Errorf("coordinator pulled structures %v, want %s", got, tm.s1)
		}
		if len(rowsOf(changes, "coordination")) != 1 || len(rowsOf(changes, "accompagnement")) != 1 {
			t.Error("coordinator misses the coordination or the accompaniment")
		}
		cols := map[string]bool{}
		for _, c := range changes {
			if c.Table == "beneficiaire" || c.Table == "activite" {
				cols[c.Table+"."+c.Column] = true
			}
		}
		for _, col := range scope.PersonalColumns("beneficiaire") {
			if cols["beneficiaire."+col] {
				t.Errorf("beneficiaire.%s reached the coordinator", col)
			}
		}
		if cols["activite.notes"] {
			t.Error("activite.notes reached the coordinator")
		}
		if !cols["beneficiaire.genre"] || !cols["beneficiaire.annee_naissance"] || !cols["activite.duree"] {
			t.Errorf("statistics columns missing: %v", cols)
		}
		for _, v := range append(personal, "Mme Secretnom") {
			if bytes.Contains(wire, []byte(v)) {
				t.Errorf("%q crossed the wire to the coordinator", v)
			}
		}

		// Through the SDK the replica holds the row with empty personal
		// columns; a deletion by A reaches the coordinator too.
		rc := tm.srv.LoggedInDevice(t, "c", tm.c.Email, pw)
		syncOK(t, rc)
		var prenom, genre any
		must(t, rc.DB().QueryRow("SELECT prenom, genre FROM beneficiaire WHERE id = ?", tm.benA).Scan(&prenom, &genre))
		if prenom != nil || genre != "feminin" {
			t.Errorf("coordinator's replica: prenom %v genre %v", prenom, genre)
		}
		run(t, tm.ra, "DELETE FROM activite WHERE id = ?", tm.actIn)
		syncOK(t, tm.ra)
		syncOK(t, rc)
		if n := countIn(t, rc, "SELECT COUNT(*) FROM activite WHERE id = ?", tm.actIn); n != 0 {
			t.Error("A's deletion did not reach the coordinator")
		}
	})
}

// TestNewCoordinationReachesHistory: a coordinator whose device synced
// before the coordination existed still receives the médiateur's past
// rows once it is added (they are re-announced), and a conseiller's date
// edit that brings an activity into the window sends the whole row.
func TestNewCoordinationReachesHistory(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		t.Parallel()
		tm := newTeam(t, e)
		ctx := context.Background()
		c2 := tm.srv.AddUser(t, "c2@exemple.fr", auth.RoleCoordinateur, pw)
		rc2 := tm.srv.LoggedInDevice(t, "c2", c2.Email, pw)
		syncOK(t, rc2)
		if n := countIn(t, rc2, "SELECT COUNT(*) FROM activite"); n != 0 {
			t.Fatalf("an unattached coordinator received %d activities", n)
		}
		must(t, tm.srv.WriteRow(ctx, "coordination", id(), map[string]any{"coordinateur_id": c2.ID, "mediateur_id": tm.a.ID}))
		syncOK(t, rc2)
		if n := countIn(t, rc2, "SELECT COUNT(*) FROM activite WHERE mediateur_id = ? AND duree = 45 AND type = 'individuel'", tm.a.ID); n != 2 {
			t.Errorf("after the coordination was added the coordinator holds %d whole activities of A's, want 2", n)
		}
		if n := countIn(t, rc2, "SELECT COUNT(*) FROM structure WHERE id = ? AND nom IS NOT NULL", tm.s1); n != 1 {
			t.Error("the coordinator did not receive the structure where A works")
		}

		// C follows A in March only: moving the April activity into March
		// sends C the whole row, not just the date.
		rc := tm.srv.LoggedInDevice(t, "c", tm.c.Email, pw)
		syncOK(t, rc)
		run(t, tm.ra, "UPDATE activite SET date = '2026-03-20' WHERE id = ?", tm.actOut)
		syncOK(t, tm.ra)
		syncOK(t, rc)
		if n := countIn(t, rc, "SELECT COUNT(*) FROM activite WHERE id = ? AND duree = 45 AND commune = 'Laval'", tm.actOut); n != 1 {
			t.Error("an activity moved into the coordination's window did not reach the coordinator whole")
		}
	})
}

// TestPersonalColumns: the columns kept from coordinators are the
// personal data listed by the Coop, and reference tables have none.
func TestPersonalColumns(t *testing.T) {
	want := []string{"prenom", "nom", "telephone", "email", "adresse", "notes"}
	got := scope.PersonalColumns("beneficiaire")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("personal columns of beneficiaire: %v", got)
	}
	raw, _ := json.Marshal(scope.PersonalColumns("structure"))
	if string(raw) != "null" && string(raw) != "[]" {
		t.Fatalf("structure has personal columns %s", raw)
	}
}

// TestRoleIsReadFromTheDatabase: a token issued while its user was an
// administrator grants only what the user's current role allows; the
// role in the token is a hint for the client, never trusted.
func TestRoleIsReadFromTheDatabase(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		t.Parallel()
		tm := newTeam(t, e)
		dev := id()
		tok := tm.srv.LoginHTTP(t, tm.admin.Email, pw, dev).AccessToken
		changes, _ := pullAll(t, tm.srv, tok)
		if len(rowsOf(changes, "beneficiaire")) != 2 {
			t.Fatal("the admin does not see both beneficiaries; the check below would prove nothing")
		}
		if _, err := tm.srv.DB().W.Exec("UPDATE _users SET role = 'conseiller' WHERE id = ?", tm.admin.ID); err != nil {
			t.Fatal(err)
		}
		changes, wire := pullAll(t, tm.srv, tok)
		if len(changes) != 0 || bytes.Contains(wire, []byte("Josiane")) {
			t.Fatalf("a demoted admin's token still pulls %d cells", len(changes))
		}
		if status, code := push(t, tm.srv, tok, dev, [4]any{"structure", tm.s2, "nom", "Renommée"}); status != 403 || code != "forbidden_scope" {
			t.Fatalf("a demoted admin's token writes reference data: %d %s", status, code)
		}
	})
}

// TestHandedOverRowReachesItsNewOwner: an administrator reassigns A's
// beneficiary to B. B's device, whose cursor is past every cell of the
// row, must receive the whole row: pulls read by owner, so the row's
// older cells must follow their new owner.
func TestHandedOverRowReachesItsNewOwner(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		t.Parallel()
		tm := newTeam(t, e)
		syncOK(t, tm.rb)
		if n := countIn(t, tm.rb, "SELECT COUNT(*) FROM beneficiaire WHERE id = ?", tm.benA); n != 0 {
			t.Fatal("B holds A's beneficiary before the handover")
		}
		must(t, tm.srv.WriteRow(context.Background(), "beneficiaire", tm.benA, map[string]any{"mediateur_id": tm.b.ID}))
		syncOK(t, tm.rb)
		if n := countIn(t, tm.rb, "SELECT COUNT(*) FROM beneficiaire WHERE id = ? AND mediateur_id = ? AND prenom = 'Josiane' AND annee_naissance = 1948", tm.benA, tm.b.ID); n != 1 {
			t.Error("after the handover B does not hold the whole beneficiary")
		}
		// A keeps the device's copy (retraction is not implemented) but
		// receives no new cells of the row.
		syncOK(t, tm.ra)
		must(t, tm.srv.WriteRow(context.Background(), "beneficiaire", tm.benA, map[string]any{"commune": "Mayenne"}))
		syncOK(t, tm.ra)
		if n := countIn(t, tm.ra, "SELECT COUNT(*) FROM beneficiaire WHERE id = ? AND commune = 'Mayenne'", tm.benA); n != 0 {
			t.Error("A still receives the beneficiary's new cells after it was handed to B")
		}
	})
}

// TestAttackCoordinatorReceivesOnlyInsideTheDates replays failure 7 of
// issue 11: a coordinator received a médiateur's beneficiaries,
// accompaniments and anonymous participants whatever their dates (a
// coordination of the first half of 2024 delivered a beneficiary first
// met in 2026), and so did a coordination starting in the future. Every
// row a coordinator receives is now dated: an accompaniment and a count
// of anonymous participants by their activity, a beneficiary by the
// activities they were accompanied in; appointments never. Read on the
// wire, then through a device: a row that comes into the window later
// (a new accompaniment of an old beneficiary, an activity moved) still
// reaches the coordinator's device whose cursor is past it.
func TestAttackCoordinatorReceivesOnlyInsideTheDates(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		t.Parallel()
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		a := srv.AddUser(t, "a@exemple.fr", auth.RoleConseiller, pw)
		past := srv.AddUser(t, "c@exemple.fr", auth.RoleCoordinateur, pw)
		future := srv.AddUser(t, "f@exemple.fr", auth.RoleCoordinateur, pw)
		must(t, srv.WriteRow(ctx, "coordination", id(), map[string]any{"coordinateur_id": past.ID, "mediateur_id": a.ID, "debut": "2024-01-01", "fin": "2024-06-30"}))
		must(t, srv.WriteRow(ctx, "coordination", id(), map[string]any{"coordinateur_id": future.ID, "mediateur_id": a.ID, "debut": "2099-01-01"}))

		ra := srv.LoggedInDevice(t, "a", a.Email, pw)
		act24, act26 := id(), id()
		ben24, ben26, benAlone := id(), id(), id()
		acc24, acc26, part24, part26, rdv := id(), id(), id(), id(), id()
		for _, b := range [][2]string{{ben24, "Laval"}, {ben26, "Ambrières-les-Vallées"}, {benAlone, "Évron"}} {
			run(t, ra, `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom, genre, annee_naissance, commune)
				VALUES (?, ?, 0, 'Josiane', 'Secretnom', 'feminin', 1950, ?)`, b[0], a.ID, b[1])
		}
		for _, act := range [][2]string{{act24, "2024-03-10"}, {act26, "2026-02-10"}} {
			run(t, ra, `INSERT INTO activite (id, mediateur_id, type, date, duree, type_lieu, commune) VALUES (?, ?, 'collectif', ?, 45, 'domicile', 'Laval')`, act[0], a.ID, act[1])
		}
		run(t, ra, "INSERT INTO accompagnement (id, mediateur_id, activite_id, beneficiaire_id) VALUES (?, ?, ?, ?), (?, ?, ?, ?)",
			acc24, a.ID, act24, ben24, acc26, a.ID, act26, ben26)
		run(t, ra, "INSERT INTO participants_anonymes (id, mediateur_id, activite_id, total) VALUES (?, ?, ?, 3), (?, ?, ?, 4)",
			part24, a.ID, act24, part26, a.ID, act26)
		run(t, ra, "INSERT INTO rendez_vous (id, mediateur_id, beneficiaire_id, debut, adresse) VALUES (?, ?, ?, '2024-03-10T10:00', '3 rue des Lilas')", rdv, a.ID, ben24)
		syncOK(t, ra)

		inWindow := map[string][]string{"activite": {act24}, "accompagnement": {acc24}, "participants_anonymes": {part24}, "beneficiaire": {ben24}}
		outside := []string{act26, acc26, part26, ben26, benAlone, rdv}
		for _, c := range []struct {
			who  auth.User
			want map[string][]string
		}{{past, inWindow}, {future, map[string][]string{}}} {
			changes, wire := pullAll(t, srv, srv.LoginHTTP(t, c.who.Email, pw, id()).AccessToken)
			for _, table := range []string{"activite", "accompagnement", "participants_anonymes", "beneficiaire", "rendez_vous"} {
				want := c.want[table]
				slices.Sort(want)
				if got := rowsOf(changes, table); !slices.Equal(got, want) {
					t.Errorf("%s pulled %s rows %v, want %v", c.who.Email, table, got, want)
				}
			}
			for _, pk := range append(slices.Clone(outside), "Ambrières", "rue des Lilas", "Josiane", "Secretnom") {
				if bytes.Contains(wire, []byte(pk)) {
					t.Errorf("%q crossed the wire to %s", pk, c.who.Email)
				}
			}
		}

		// Rows that come into the window later reach a device already past
		// their cells: an old beneficiary accompanied in a 2024 activity, an
		// activity moved into the window with its accompaniment, count and
		// beneficiary.
		rc := srv.LoggedInDevice(t, "c", past.Email, pw)
		syncOK(t, rc)
		if n := countIn(t, rc, "SELECT COUNT(*) FROM beneficiaire"); n != 1 {
			t.Fatalf("the coordinator's device holds %d beneficiaries, want 1", n)
		}
		run(t, ra, "INSERT INTO accompagnement (id, mediateur_id, activite_id, beneficiaire_id) VALUES (?, ?, ?, ?)", id(), a.ID, act24, benAlone)
		run(t, ra, "UPDATE activite SET date = '2024-05-02' WHERE id = ?", act26)
		syncOK(t, ra)
		syncOK(t, rc)
		for table, pk := range map[string]string{"beneficiaire": benAlone, "activite": act26, "accompagnement": acc26, "participants_anonymes": part26} {
			if n := countIn(t, rc, "SELECT COUNT(*) FROM "+table+" WHERE id = ? AND mediateur_id = ?", pk, a.ID); n != 1 {
				t.Errorf("the %s that came into the window did not reach the coordinator's device", table)
			}
		}
		if n := countIn(t, rc, "SELECT COUNT(*) FROM beneficiaire WHERE id = ? AND commune = 'Ambrières-les-Vallées' AND annee_naissance = 1950", ben26); n != 1 {
			t.Error("the beneficiary of the activity moved into the window did not arrive whole")
		}
		if n := countIn(t, rc, "SELECT COUNT(*) FROM rendez_vous"); n != 0 {
			t.Error("an appointment reached the coordinator")
		}
	})
}
