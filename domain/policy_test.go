package domain_test

import (
	"context"
	"testing"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// TestLabelsTableMatchesGo: the _labels table a migration fills and
// domain.Enums are the same list, so SQL readers and Go readers show the
// same words.
func TestLabelsTableMatchesGo(t *testing.T) {
	ctx := context.Background()
	dev := relaistest.OpenDevice(t, "labels", devOpts())
	rows, err := dev.DB().QueryContext(ctx, "SELECT enum, value, label, position FROM _labels ORDER BY enum, position")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string][]domain.Option{}
	for rows.Next() {
		var e string
		var o domain.Option
		var pos int
		if err := rows.Scan(&e, &o.Value, &o.Label, &pos); err != nil {
			t.Fatal(err)
		}
		if pos != len(got[e])+1 {
			t.Fatalf("%s.%s at position %d", e, o.Value, pos)
		}
		got[e] = append(got[e], o)
	}
	if len(got) != len(domain.Enums) {
		t.Fatalf("_labels has %d enums, Go has %d", len(got), len(domain.Enums))
	}
	for _, e := range domain.Enums {
		if len(got[e.Name]) != len(e.Options) {
			t.Fatalf("%s: _labels has %d values, Go has %d", e.Name, len(got[e.Name]), len(e.Options))
		}
		for i, o := range e.Options {
			if got[e.Name][i] != o {
				t.Errorf("%s[%d]: _labels %v, Go %v", e.Name, i, got[e.Name][i], o)
			}
		}
	}
}

func TestLabels(t *testing.T) {
	for _, c := range []struct{ enum, value, want string }{
		{domain.TypeLieu, "domicile", "À domicile"},
		{domain.Thematique, "argent_impots", "Argent - Impôts"},
		{domain.Thematique, "securite_numerique", "Prévention en sécurité numérique"},
		{domain.StatutRendezVous, "noshow", "Absence"},
		{domain.TrancheAge, "soixante_dix_plus", "70 ans et plus"},
		{domain.Autonomie, "entierement_accompagne", "Avec guidage"},
		{domain.Genre, "valeur_future", "valeur_future"}, // unknown: shown as is
		{"pas_un_enum", "x", "x"},
	} {
		if got := domain.Label(c.enum, c.value); got != c.want {
			t.Errorf("Label(%s, %s) = %q, want %q", c.enum, c.value, got, c.want)
		}
	}
	if n := len(domain.ThematiquesNumeriques); n != 19 {
		t.Errorf("%d digital themes, the Coop has 19", n)
	}
	if n := len(domain.ThematiquesAdministratives); n != 11 {
		t.Errorf("%d administrative themes, the Coop has 11", n)
	}
}

func TestTrancheAgeOf(t *testing.T) {
	for _, c := range []struct {
		born int
		want string
	}{
		{0, "non_communique"}, {2030, "non_communique"}, {2015, "moins_de_douze"}, {2013, "douze_dix_huit"},
		{2008, "douze_dix_huit"}, {2007, "dix_huit_vingt_quatre"}, {2000, "vingt_cinq_trente_neuf"},
		{1986, "vingt_cinq_trente_neuf"}, {1985, "quarante_cinquante_neuf"}, {1966, "quarante_cinquante_neuf"},
		{1965, "soixante_soixante_neuf"}, {1956, "soixante_soixante_neuf"}, {1955, "soixante_dix_plus"}, {1930, "soixante_dix_plus"},
	} {
		if got := domain.TrancheAgeOf(c.born, 2025); got != c.want {
			t.Errorf("born %d in 2025: %s, want %s", c.born, got, c.want)
		}
	}
	for m, want := range map[int]string{1: "moins_de_30", 29: "moins_de_30", 30: "30_a_60", 59: "30_a_60", 60: "60_a_120", 119: "60_a_120", 120: "120_et_plus", 600: "120_et_plus"} {
		if got := domain.DureeTrancheOf(m); got != want {
			t.Errorf("DureeTrancheOf(%d) = %s, want %s", m, got, want)
		}
	}
}

// TestServerRefusesOnlyWhatABatchBreaks: a row already breaking a rule
// (written before the rule, or by the server) does not block unrelated
// edits; an edit that breaks a valid row is refused and changes nothing.
func TestServerRefusesOnlyWhatABatchBreaks(t *testing.T) {
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{})
	u := srv.AddUser(t, "c@exemple.fr", "admin", "motdepasse1")
	d := newRawDevice(t, srv, "c@exemple.fr", "motdepasse1")

	legacy := newID()
	row := base("activite", u.ID)
	row["duree"] = 0 // breaks duree_activite; the server's own writes are not checked
	if err := srv.WriteRow(ctx, "activite", legacy, row); err != nil {
		t.Fatal(err)
	}
	if perr := d.push("activite", legacy, map[string]any{"notes": "Rappeler jeudi"}); perr != nil {
		t.Fatalf("edit of an already invalid row refused: %v", perr)
	}
	if perr := d.push("activite", legacy, map[string]any{"type_lieu": "lieu_activite"}); perr == nil || perr.Details["rule"] != "structure_lieu_activite" {
		t.Fatalf("a second broken rule must be refused, got %v", perr)
	}

	valid := newID()
	if perr := d.push("activite", valid, base("activite", u.ID)); perr != nil {
		t.Fatal(perr)
	}
	var seq int64
	if err := srv.DB().R.QueryRowContext(ctx, "SELECT seq FROM _replica").Scan(&seq); err != nil {
		t.Fatal(err)
	}
	perr := d.push("activite", valid, map[string]any{"duree": 2000, "notes": "jamais stocké"})
	if perr == nil || perr.Code != syncproto.CodeInvalidRow || perr.Details["rule"] != "duree_activite" || perr.Details["pk"] != valid {
		t.Fatalf("got %v", perr)
	}
	var duree, seqAfter int64
	var notes any
	if err := srv.DB().R.QueryRowContext(ctx, "SELECT duree, notes, (SELECT seq FROM _replica) FROM activite WHERE id = ?", valid).Scan(&duree, &notes, &seqAfter); err != nil {
		t.Fatal(err)
	}
	if duree != 45 || notes != nil || seqAfter != seq {
		t.Fatalf("refused batch changed the row: duree %d notes %v seq %d -> %d", duree, notes, seq, seqAfter)
	}
}

// TestConcurrentValidWritesMergingIntoAnInvalidRow documents the
// server's decision: two devices each write a valid row, but merged cell
// by cell they would break structure_lieu_activite. The first to sync is
// stored; the second is refused with the rule's name and kept in its
// device's _rejected table, never silently lost.
func TestConcurrentValidWritesMergingIntoAnInvalidRow(t *testing.T) {
	ctx := context.Background()
	tt := relaistest.StartTwoTablets(t, server.Config{}, "m@exemple.fr", "admin")
	srv, u, a, b := tt.Server, tt.User, tt.A, tt.B
	id, s1, s2 := newID(), newID(), newID()
	if _, err := a.DB().ExecContext(ctx, `INSERT INTO activite (id, mediateur_id, type, date, duree, type_lieu, structure_id)
		VALUES (?, ?, 'individuel', '2025-04-02', 30, 'lieu_activite', ?)`, id, u.ID, s1); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	mustSync(t, b)
	// A moves the activity to the beneficiary's home; B, offline, fixes
	// the structure it thinks the activity still happened at.
	if _, err := a.DB().ExecContext(ctx, "UPDATE activite SET type_lieu = 'domicile', structure_id = NULL, commune = 'Laval' WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB().ExecContext(ctx, "UPDATE activite SET structure_id = ? WHERE id = ?", s2, id); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	mustRefuse(t, b, "structure_lieu_activite")
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rejected != 1 || st.Pending != 0 {
		t.Fatalf("b: %d rejected, %d pending; want the write kept aside", st.Rejected, st.Pending)
	}
	var lieu string
	var structure any
	if err := srv.DB().R.QueryRowContext(ctx, "SELECT type_lieu, structure_id FROM activite WHERE id = ?", id).Scan(&lieu, &structure); err != nil {
		t.Fatal(err)
	}
	if lieu != "domicile" || structure != nil {
		t.Fatalf("server row: %s %v", lieu, structure)
	}
}

// mustRefuse syncs d, whose pending write the server must refuse by rule:
// the sync itself succeeds, and the refused change is kept on d with the
// rule and a French reason.
func mustRefuse(t *testing.T, d *device.Replica, rule string) {
	t.Helper()
	rep := mustSync(t, d)
	list, err := d.Rejected(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected == 0 || len(list) == 0 || list[len(list)-1].Rule != rule || list[len(list)-1].Code != string(syncproto.CodeInvalidRow) || list[len(list)-1].Reason == "" {
		t.Fatalf("sync: %+v, rejected %+v; want a change refused by rule %s", rep, list, rule)
	}
}

func mustSync(t *testing.T, d *device.Replica) device.Report {
	t.Helper()
	rep, err := d.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return rep
}
