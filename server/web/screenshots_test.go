package web_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/relais-numerique/relais/client-sdk/device"
)

// TestScreenshots renders the main pages in Chromium, on a team with a
// season of activity, and writes them as PNG files into the directory
// named by RELAIS_SCREENSHOTS (docs/screenshots in the repository):
//
//	RELAIS_SCREENSHOTS=$PWD/docs/screenshots go test -run Screenshots ./server/web/
//
// Without the variable it is skipped: it checks nothing the other tests
// do not, and the pictures are for readers of the docs.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("RELAIS_SCREENSHOTS")
	if dir == "" {
		t.Skip("set RELAIS_SCREENSHOTS to a directory to write the dashboard's screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t)
	ctx := context.Background()
	structures := seedStructures(t, w)
	brunoT := w.srv.LoggedInDevice(t, "bruno", "bruno@exemple.fr", pw)
	rng := rand.New(rand.NewPCG(53, 2026))
	seedSeason(t, w.aliceA, w.alice.ID, structures, 140, rng)
	seedSeason(t, brunoT, w.bruno.ID, structures, 110, rng)
	syncOK(t, w.aliceA)
	syncOK(t, w.aliceB)
	syncOK(t, brunoT)
	concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "duree", 60, 90)
	concurrentEdit(t, w.aliceA, w.aliceB, "beneficiaire", w.aliceBen, "nom", "Lefèvre", "Lefebvre-Martin")
	concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "commune", "Louverné", "Saint-Berthevin")
	// People and devices carry the names they are given in practice.
	for email, name := range map[string]string{"claire@exemple.fr": "Claire Morin", "alice@exemple.fr": "Alice Durand",
		"bruno@exemple.fr": "Bruno Petit", "carole@exemple.fr": "Carole Marchand", "denis@exemple.fr": "Denis Roux"} {
		if _, err := w.srv.DB().W.ExecContext(ctx, "UPDATE _users SET name = ? WHERE email = ?", name, email); err != nil {
			t.Fatal(err)
		}
	}
	for dev, name := range map[string]string{w.aliceA.Node(): "Tablette", w.aliceB.Node(): "Téléphone", brunoT.Node(): "Tablette"} {
		if _, err := w.srv.DB().W.ExecContext(ctx, "UPDATE _devices SET name = ? WHERE id = ?", name, dev); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-12 * 24 * time.Hour).UnixMilli()
	if _, err := w.srv.DB().W.ExecContext(ctx, "UPDATE _devices SET last_seen_at = ?, last_sync_at = ? WHERE id = ?", old, old, brunoT.Node()); err != nil {
		t.Fatal(err)
	}

	tab := chromium(t)
	shoot := func(name string, width int64) {
		t.Helper()
		do(t, tab, chromedp.EmulateViewport(width, 800))
		png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	navigate(t, tab, chromedp.Navigate(w.srv.URL+"/connexion"))
	shoot("connexion", 1024)
	loginInBrowser(t, tab, w.srv.URL, "claire@exemple.fr")
	shoot("conflits", 1280)
	navigate(t, tab, chromedp.Navigate(fmt.Sprintf("%s/conflits/%d", w.srv.URL, conflictID(t, w, "activite", "duree"))))
	shoot("conflit", 1024)
	navigate(t, tab, chromedp.Navigate(w.srv.URL+"/flotte"))
	shoot("flotte", 1280)
	navigate(t, tab, chromedp.Navigate(w.srv.URL+"/flotte"))
	shoot("flotte-tablette", 768)
	navigate(t, tab, chromedp.Navigate(w.srv.URL+"/statistiques?du=2026-01-01&au=2026-11-30"))
	shoot("statistiques", 1280)
	navigate(t, tab, chromedp.Navigate(w.srv.URL+"/exports?du=2026-01-01&au=2026-11-30"))
	shoot("exports", 1024)
	navigate(t, tab, chromedp.Navigate(fmt.Sprintf("%s/flotte/%s/revocation", w.srv.URL, w.aliceB.Node())))
	shoot("revocation", 1024)
	logoutInBrowser(t, tab)
	// The conseillère who owns the beneficiary sees the personal field.
	loginInBrowser(t, tab, w.srv.URL, "alice@exemple.fr")
	navigate(t, tab, chromedp.Navigate(fmt.Sprintf("%s/conflits/%d", w.srv.URL, conflictID(t, w, "beneficiaire", "nom"))))
	shoot("conflit-conseillere", 1024)
}

type structureT struct {
	id, commune, insee string
	itinerant          bool
}

// seedStructures creates, as the server (structures are reference data
// only administrators write), three places of the Mayenne.
func seedStructures(t *testing.T, w *world) []structureT {
	t.Helper()
	ctx := context.Background()
	list := []struct {
		nom, commune, insee, itin string
	}{
		{"France Services de Laval", "Laval", "53130", "fixe"},
		{"PANDA · arrêt Saint-Nicolas", "Laval", "53130", "itinerant"},
		{"Médiathèque de Château-Gontier", "Château-Gontier-sur-Mayenne", "53062", "fixe"},
	}
	var out []structureT
	for _, s := range list {
		id := newID()
		if err := w.srv.WriteRow(ctx, "structure", id, map[string]any{"nom": s.nom, "commune": s.commune, "code_insee": s.insee,
			"itinerance": s.itin}); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{w.alice.ID, w.bruno.ID} {
			if err := w.srv.WriteRow(ctx, "mediateur_en_activite", newID(), map[string]any{"mediateur_id": m, "structure_id": id,
				"debut": "2025-01-01"}); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, structureT{id, s.commune, s.insee, s.itin == "itinerant"})
	}
	return out
}

// seedSeason records n activities of 2026 on a device, as a conseiller's
// year looks in the Mayenne: many home visits and administrative help,
// mostly retired people, a few workshops.
func seedSeason(t *testing.T, r *device.Replica, owner string, structures []structureT, n int, rng *rand.Rand) {
	t.Helper()
	ctx := context.Background()
	communes := [][2]string{{"Laval", "53130"}, {"Mayenne", "53147"}, {"Évron", "53097"}, {"Craon", "53084"},
		{"Ernée", "53096"}, {"Château-Gontier-sur-Mayenne", "53062"}}
	pick := func(weights map[string]int) string {
		total := 0
		for _, w := range weights {
			total += w
		}
		x := rng.IntN(total)
		keys := make([]string, 0, len(weights))
		for k := range weights {
			keys = append(keys, k)
		}
		// Sorted so that the same seed gives the same season.
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				if keys[j] < keys[i] {
					keys[i], keys[j] = keys[j], keys[i]
				}
			}
		}
		for _, k := range keys {
			if x -= weights[k]; x < 0 {
				return k
			}
		}
		return keys[0]
	}
	err := withTx(ctx, r.DB(), func(tx *sql.Tx) error {
		var bens []string
		for i := 0; i < 45; i++ {
			id := newID()
			c := communes[rng.IntN(len(communes))]
			age := pick(map[string]int{"soixante_dix_plus": 38, "soixante_soixante_neuf": 24, "quarante_cinquante_neuf": 16,
				"vingt_cinq_trente_neuf": 10, "dix_huit_vingt_quatre": 5, "non_communique": 7})
			status := "retraite"
			if age != "soixante_dix_plus" && age != "soixante_soixante_neuf" {
				status = pick(map[string]int{"en_emploi": 3, "sans_emploi": 4, "non_communique": 2, "scolarise": 1})
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO beneficiaire (id, mediateur_id, anonyme, commune, commune_code_insee,
				genre, tranche_age, statut_social) VALUES (?, ?, 1, ?, ?, ?, ?, ?)`, id, owner, c[0], c[1],
				pick(map[string]int{"feminin": 58, "masculin": 38, "non_communique": 4}), age, status); err != nil {
				return err
			}
			bens = append(bens, id)
		}
		themes := map[string]int{"email": 14, "navigation_sur_internet": 12, "prendre_en_main_du_materiel": 16,
			"securite_numerique": 7, "banque_et_achats_en_ligne": 6, "sante": 6, "gere_ses_contenus_numeriques": 5,
			"reseaux_sociaux": 3, "aide_aux_demarches_administratives": 22}
		admin := []string{"argent_impots", "social_sante", "papiers_elections_citoyennete", "logement", "transports_mobilite"}
		for i := 0; i < n; i++ {
			id := newID()
			date := time.Date(2026, time.Month(1+rng.IntN(11)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
			typ := "individuel"
			if rng.IntN(10) == 0 {
				typ = "collectif"
			}
			lieu := pick(map[string]int{"domicile": 38, "lieu_activite": 46, "a_distance": 8, "autre": 8})
			var structure, commune, insee any
			if lieu == "lieu_activite" {
				s := structures[rng.IntN(len(structures))]
				structure = s.id
			} else if lieu != "a_distance" {
				c := communes[rng.IntN(len(communes))]
				commune, insee = c[0], c[1]
			}
			th := []string{pick(themes)}
			if th[0] == "aide_aux_demarches_administratives" {
				th = append(th, admin[rng.IntN(len(admin))])
			} else if rng.IntN(3) == 0 {
				if extra := pick(themes); extra != th[0] && extra != "aide_aux_demarches_administratives" {
					th = append(th, extra)
				}
			}
			duree := []int{15, 30, 45, 60, 60, 90, 120}[rng.IntN(7)]
			var autonomie, titre any
			if typ == "individuel" {
				autonomie = pick(map[string]int{"entierement_accompagne": 5, "partiellement_autonome": 4, "autonome": 1})
			} else {
				titre, duree = "Premiers pas sur la tablette", 120
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO activite (id, mediateur_id, type, date, duree, type_lieu, structure_id,
				commune, code_insee, thematiques, materiel, autonomie, titre_atelier) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, owner, typ, date, duree, lieu, structure, commune, insee, `["`+strings.Join(th, `","`)+`"]`,
				`["`+pick(map[string]int{"tablette": 4, "telephone": 5, "ordinateur": 3, "aucun": 1})+`"]`, autonomie, titre); err != nil {
				return err
			}
			if typ == "collectif" {
				total := 4 + rng.IntN(6)
				fem := total / 2
				if _, err := tx.ExecContext(ctx, `INSERT INTO participants_anonymes (id, mediateur_id, activite_id, total,
					genre_feminin, genre_masculin, tranche_age_soixante_dix_plus, tranche_age_soixante_soixante_neuf, statut_social_retraite)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, newID(), owner, id, total, fem, total-fem, total/2, total-total/2, total); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO accompagnement (id, mediateur_id, activite_id, beneficiaire_id)
				VALUES (?, ?, ?, ?)`, newID(), owner, id, bens[rng.IntN(len(bens))]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed a season on %s: %v", r.Node(), err)
	}
}

func withTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
