package domain_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// secrets are personal values written in a test: none may survive erasure.
type secrets []string

// fataler is what the helpers need of *testing.T and *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// findIn returns "table.column" for every cell of every table of db that
// holds one of the secrets.
func (s secrets) findIn(t fataler, db *sql.DB) []string {
	t.Helper()
	tables := relaistest.Tables(t, db)
	var found []string
	for _, tbl := range tables {
		cols, rows := relaistest.Rows(t, db, `SELECT * FROM "`+tbl+`"`)
		for _, row := range rows {
			for i, v := range row {
				text := fmt.Sprint(v)
				for _, sec := range s {
					if strings.Contains(text, sec) {
						found = append(found, fmt.Sprintf("%s.%s holds %q", tbl, cols[i], sec))
					}
				}
			}
		}
	}
	return found
}

// inFile reports which secrets appear in the bytes of a file.
func (s secrets) inFile(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var found []string
	for _, sec := range s {
		if bytes.Contains(data, []byte(sec)) {
			found = append(found, sec)
		}
	}
	return found
}

func (s secrets) mustHold(t *testing.T, what string, db *sql.DB) {
	t.Helper()
	if len(s.findIn(t, db)) == 0 {
		t.Fatalf("%s does not hold the personal values before erasure: the test would prove nothing", what)
	}
}

// TestErasureReachesEverySecondDevice: a conseillère erases a beneficiary
// on tablet A. Tablet B had the beneficiary, had a concurrent edit in
// the server's conflict log, and writes a new personal value offline
// after the erasure (refused by the server, kept in B's _rejected). Once
// B has synced, no table of B's file, and no byte of the file after a
// checkpoint, holds any of these values; nor does any table of the server.
func TestErasureReachesEverySecondDevice(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		tt := e.StartTwoTablets(t, server.Config{}, "claire@exemple.fr", "conseiller")
		srv, u, a, b := tt.Server, tt.User, tt.A, tt.B
		sec := secrets{"Josiane", "Pelletier-Brulon", "0243671234", "josiane.pelletier@exemple.fr",
			"12 rue des Tanneurs", "Veuve, sa petite-fille vit a Rennes", "Note-de-A-confidentielle", "Note-de-B-confidentielle", "Josianne-B"}

		ben, rdv := newID(), newID()
		exec(t, a.DB(), `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom, telephone, email, adresse, notes,
			annee_naissance, genre, tranche_age, statut_social, commune, commune_code_postal, commune_code_insee)
			VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, 1944, 'feminin', 'soixante_dix_plus', 'retraite', 'Laval', '53000', '53130')`,
			ben, u.ID, sec[0], sec[1], sec[2], sec[3], sec[4], sec[5])
		exec(t, a.DB(), `INSERT INTO rendez_vous (id, mediateur_id, beneficiaire_id, debut, fin, adresse, statut, commune, code_insee)
			VALUES (?, ?, ?, '2025-06-03T14:00:00Z', '2025-06-03T15:00:00Z', ?, 'seen', 'Laval', '53130')`, rdv, u.ID, ben, sec[4]+", 53000 Laval")
		mustSync(t, a)
		mustSync(t, b)

		// Concurrent edits of the notes: the server logs the loser.
		exec(t, a.DB(), "UPDATE beneficiaire SET notes = ? WHERE id = ?", sec[6], ben)
		exec(t, b.DB(), "UPDATE beneficiaire SET notes = ? WHERE id = ?", sec[7], ben)
		mustSync(t, a)
		mustSync(t, b)
		mustSync(t, a)
		sec.mustHold(t, "the server", srv.DB().R)
		var logged int
		if err := srv.DB().R.QueryRowContext(ctx, "SELECT COUNT(*) FROM _conflicts WHERE pk = ? AND col = 'notes' AND loser_val IS NOT NULL", ben).Scan(&logged); err != nil || logged != 1 {
			t.Fatalf("conflict log: %d rows, %v; the test needs the loser logged", logged, err)
		}

		// A erases; B, still offline, corrects the first name afterwards.
		if err := domain.EraseOnDevice(ctx, a.DB(), ben); err != nil {
			t.Fatal(err)
		}
		mustSync(t, a)
		exec(t, b.DB(), "UPDATE beneficiaire SET prenom = ? WHERE id = ?", sec[8], ben)
		// The refusal and the erasure travel in the same sync: the edit is
		// refused, and the same exchange's pull erases the beneficiary on b
		// at once, her refused value included (issue 12).
		mustRefuse(t, b, "beneficiaire_anonyme")
		if found := sec.findIn(t, b.DB()); len(found) > 0 {
			t.Fatalf("device b still holds %v after the sync that was refused its edit", found)
		}
		mustSync(t, b)

		var anonyme int
		var genre, commune string
		if err := b.DB().QueryRowContext(ctx, "SELECT anonyme, genre, commune FROM beneficiaire WHERE id = ?", ben).Scan(&anonyme, &genre, &commune); err != nil {
			t.Fatal(err)
		}
		if anonyme != 1 || genre != "feminin" || commune != "Laval" {
			t.Fatalf("b's row: anonyme %d genre %s commune %s; statistics fields must stay", anonyme, genre, commune)
		}
		for name, db := range map[string]*sql.DB{"device a": a.DB(), "device b": b.DB(), "server": srv.DB().W} {
			if found := sec.findIn(t, db); len(found) > 0 {
				t.Errorf("%s still holds personal values after erasure: %v", name, found)
			}
		}
		// No checkpoint here: the sync that applied the erasure emptied the
		// log itself, and the erasing tablet's own sync did the same.
		for _, p := range []string{a.Path(), a.Path() + "-wal", b.Path(), b.Path() + "-wal"} {
			if found := sec.inFile(t, p); len(found) > 0 {
				t.Errorf("the bytes of %s still hold %v", p, found)
			}
		}
		// And B cannot put a name back on the anonymised beneficiary.
		_, err := b.DB().ExecContext(ctx, "UPDATE beneficiaire SET nom = 'Pelletier' WHERE id = ?", ben)
		if err == nil || !strings.Contains(err.Error(), "rule beneficiaire_anonyme") {
			t.Fatalf("naming an anonymised beneficiary: %v", err)
		}
	})
}

// TestRetentionJob: the server anonymises beneficiaries with no write
// for longer than the retention age, counting their accompaniments, and
// devices receive it like any erasure.
func TestRetentionJob(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		var shift time.Duration
		srv := e.Start(t, server.Config{Now: func() time.Time { return time.Now().Add(shift) }})
		u := srv.AddUser(t, "paul@exemple.fr", "conseiller", "motdepasse1")
		a := srv.LoggedInDevice(t, "a", "paul@exemple.fr", "motdepasse1")
		old, kept := newID(), newID()
		for _, id := range []string{old, kept} {
			exec(t, a.DB(), `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom, telephone, genre)
				VALUES (?, ?, 0, 'Marcel', ?, '0243000001', 'masculin')`, id, u.ID, "Nom-"+id)
		}
		mustSync(t, a)
		if n, err := srv.RunRetention(ctx, 0); err != nil || n != 0 {
			t.Fatalf("fresh beneficiaries anonymised: %d, %v", n, err)
		}
		// Thirteen months later, "kept" was accompanied last week.
		shift = 395 * 24 * time.Hour
		if err := srv.WriteRow(ctx, "accompagnement", newID(), map[string]any{"mediateur_id": u.ID, "beneficiaire_id": kept, "activite_id": newID()}); err != nil {
			t.Fatal(err)
		}
		n, err := srv.RunRetention(ctx, 0)
		if err != nil || n != 1 {
			t.Fatalf("retention anonymised %d, %v; want 1", n, err)
		}
		if n, err := srv.RunRetention(ctx, 0); err != nil || n != 0 {
			t.Fatalf("second run anonymised %d more, %v", n, err)
		}
		// The access token was issued thirteen months ago, in server time.
		if err := a.Login(ctx, srv.URL, "paul@exemple.fr", "motdepasse1"); err != nil {
			t.Fatal(err)
		}
		mustSync(t, a)
		check := func(id string, wantAnon int, wantNom any) {
			t.Helper()
			var anon int
			var nom, tel any
			if err := a.DB().QueryRowContext(ctx, "SELECT anonyme, nom, telephone FROM beneficiaire WHERE id = ?", id).Scan(&anon, &nom, &tel); err != nil {
				t.Fatal(err)
			}
			if anon != wantAnon || fmt.Sprint(nom) != fmt.Sprint(wantNom) {
				t.Fatalf("%s on the device: anonyme %d nom %v telephone %v", id, anon, nom, tel)
			}
		}
		check(old, 1, nil)
		check(kept, 0, "Nom-"+kept)
		if found := (secrets{"Nom-" + old}).findIn(t, a.DB()); len(found) > 0 {
			t.Fatalf("device still holds %v", found)
		}
	})
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestErasureCompletedOverANewerEdit: tablet B erases a beneficiary
// offline; tablet A, not knowing, then changes the phone number and
// syncs first. When B's erasure arrives, the newer number would survive
// it cell by cell; the server completes the erasure instead of refusing
// it, and A loses the number at its next sync.
func TestErasureCompletedOverANewerEdit(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		tt := e.StartTwoTablets(t, server.Config{}, "lise@exemple.fr", "conseiller")
		srv, u, a, b := tt.Server, tt.User, tt.A, tt.B
		id := newID()
		exec(t, a.DB(), "INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom, telephone) VALUES (?, ?, 0, 'Renée', 'Fouqué', '0243000000')", id, u.ID)
		mustSync(t, a)
		mustSync(t, b)
		if err := domain.EraseOnDevice(ctx, b.DB(), id); err != nil {
			t.Fatal(err)
		}
		exec(t, a.DB(), "UPDATE beneficiaire SET telephone = '0699999999' WHERE id = ?", id)
		mustSync(t, a)
		if _, err := b.Sync(ctx); err != nil {
			t.Fatalf("the erasure was refused: %v", err)
		}
		mustSync(t, a)
		for name, db := range map[string]*sql.DB{"server": srv.DB().R, "a": a.DB(), "b": b.DB()} {
			var anon int
			var tel any
			if err := db.QueryRowContext(ctx, "SELECT anonyme, telephone FROM beneficiaire WHERE id = ?", id).Scan(&anon, &tel); err != nil {
				t.Fatal(err)
			}
			if anon != 1 || tel != nil {
				t.Errorf("%s: anonyme %d telephone %v", name, anon, tel)
			}
			if found := (secrets{"0699999999", "0243000000", "Renée", "Fouqué"}).findIn(t, db); len(found) > 0 {
				t.Errorf("%s keeps %v", name, found)
			}
		}
	})
}
