package pwa_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
)

// TestAppScreenshots renders the app's pages in Chromium, at a tablet's
// width (800 px) and a phone's (390 px), on a conseillère's recent
// weeks, and writes them as PNG files into the directory named by
// RELAIS_SCREENSHOTS (docs/screenshots in the repository), as the
// dashboard's TestScreenshots does:
//
//	RELAIS_SCREENSHOTS=$PWD/docs/screenshots go test -run AppScreenshots ./server/pwa/
//
// Without the variable it is skipped: it checks nothing the other tests
// do not, and the pictures are for readers of the docs.
func TestAppScreenshots(t *testing.T) {
	dir := os.Getenv("RELAIS_SCREENSHOTS")
	if dir == "" {
		t.Skip("set RELAIS_SCREENSHOTS to a directory to write the app's screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tm := newTeam(t)
	ctx := context.Background()
	if _, err := tm.srv.DB().W.ExecContext(ctx, "UPDATE _users SET name = 'Camille Martin' WHERE id = ?", tm.camille); err != nil {
		t.Fatal(err)
	}
	var structures []string
	for _, s := range [][3]string{{"France Services de Laval", "Laval", "53130"}, {"PANDA · arrêt Saint-Nicolas", "Laval", "53130"}} {
		id := uuid.Must(uuid.NewV7()).String()
		if err := tm.srv.WriteRow(ctx, "structure", id, map[string]any{"nom": s[0], "commune": s[1], "code_insee": s[2]}); err != nil {
			t.Fatal(err)
		}
		if err := tm.srv.WriteRow(ctx, "mediateur_en_activite", uuid.Must(uuid.NewV7()).String(), map[string]any{
			"mediateur_id": tm.camille, "structure_id": id, "debut": "2025-01-01"}); err != nil {
			t.Fatal(err)
		}
		structures = append(structures, id)
	}
	g := tm.srv.LoggedInDevice(t, "tablette", "camille@exemple.fr", pw)
	seedWeeks(t, g, structures)
	if _, err := g.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	tab := chromium(t, 800, 1000)
	shoot := func(name string, width int64) {
		t.Helper()
		do(t, tab, chromedp.EmulateViewport(width, 900))
		time.Sleep(200 * time.Millisecond) // the layout settles at the new width
		png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	openApp(t, tab, tm.link.URL())
	shoot("app-connexion", 800)
	submitLogin(t, tab)
	until(t, tab, "document.querySelector('h1').textContent === 'Mes activités'", "her activities")
	synced(t, tab)
	do(t, tab, chromedp.Evaluate[chromedp.Void]("location.hash = '#/beneficiaires'"))
	do(t, tab, chromedp.Evaluate[chromedp.Void]("location.hash = '#/activites'"))
	until(t, tab, "document.querySelectorAll('#liste-activites li').length >= 12", "the list")
	shoot("app-activites", 800)
	shoot("app-activites-telephone", 390)

	offline(t, tab, tm.link, true)
	until(t, tab, "document.querySelector('#reseau').textContent === 'Hors ligne'", "Hors ligne")
	fillVisit(t, tab, visit{kind: "individuel", minutes: "45", place: "domicile", commune: "Laval", themes: []string{"logement"}})
	do(t, tab, chromedp.Click(chromedp.CSS("#enregistrer")))
	until(t, tab, "!document.querySelector('#erreur-thematiques').hidden", "the rule's message")
	shoot("app-activite-regle", 800)
	do(t, tab, chromedp.Click(chromedp.CSS(`input[name="thematiques"][value="aide_aux_demarches_administratives"]`)))
	save(t, tab)
	shoot("app-hors-ligne", 800)

	do(t, tab, chromedp.Evaluate[chromedp.Void]("location.hash = '#/activite/nouvelle'"))
	until(t, tab, "document.querySelector('#formulaire-activite') !== null", "the form")
	do(t, tab, chromedp.Evaluate[chromedp.Void]("window.scrollTo(0, 0)"))
	shoot("app-activite", 800)
	shoot("app-activite-telephone", 390)

	do(t, tab, chromedp.Evaluate[chromedp.Void]("location.hash = '#/beneficiaires'"))
	until(t, tab, "document.querySelector('#liste-beneficiaires') !== null", "the beneficiaries")
	shoot("app-beneficiaires", 800)
	id := js[string](t, tab, "document.querySelector('#liste-beneficiaires li').dataset.id")
	do(t, tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("location.hash = '#/beneficiaire/%s'", id)))
	until(t, tab, "document.querySelector('#formulaire-beneficiaire') !== null", "the beneficiary")
	do(t, tab, chromedp.Click(chromedp.CSS("#effacer")))
	shoot("app-beneficiaire-effacement", 800)

	offline(t, tab, tm.link, false)
	synced(t, tab)
	do(t, tab, chromedp.Evaluate[chromedp.Void]("location.hash = '#/synchronisation'"))
	until(t, tab, "document.querySelector('h1').textContent === 'Synchronisation'", "the sync page")
	shoot("app-synchronisation", 800)
}

// seedWeeks records, on Camille's Go device, her last weeks: a few
// identified beneficiaries and their visits.
func seedWeeks(t *testing.T, g *device.Replica, structures []string) {
	t.Helper()
	people := [][4]string{{"Jeanne", "Lefebvre", "1948", "Laval"}, {"Marcel", "Guérin", "1939", "Louverné"},
		{"Aïcha", "Benali", "1986", "Laval"}, {"Louis", "Bernard", "1952", "Bonchamp-lès-Laval"},
		{"Odile", "Chauvin", "1944", "Saint-Berthevin"}, {"Kevin", "Morel", "2004", "Laval"}}
	var bens []string
	for _, p := range people {
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := g.DB().Exec(`INSERT INTO beneficiaire (id, anonyme, prenom, nom, annee_naissance, commune, genre, statut_social)
			VALUES (?, 0, ?, ?, ?, ?, 'non_communique', 'retraite')`, id, p[0], p[1], p[2], p[3]); err != nil {
			t.Fatal(err)
		}
		bens = append(bens, id)
	}
	today := time.Now()
	for i := range 12 {
		id := uuid.Must(uuid.NewV7()).String()
		date := today.AddDate(0, 0, -i*2).Format(time.DateOnly)
		var err error
		switch i % 3 {
		case 0:
			_, err = g.DB().Exec(`INSERT INTO activite (id, type, date, duree, type_lieu, commune, thematiques, materiel, autonomie)
				VALUES (?, 'individuel', ?, 45, 'domicile', ?, '["aide_aux_demarches_administratives","argent_impots"]', '["tablette"]', 'entierement_accompagne')`,
				id, date, people[i%len(people)][3])
		case 1:
			_, err = g.DB().Exec(`INSERT INTO activite (id, type, date, duree, type_lieu, structure_id, thematiques, materiel, autonomie)
				VALUES (?, 'individuel', ?, 30, 'lieu_activite', ?, '["email","navigation_sur_internet"]', '["telephone"]', 'partiellement_autonome')`,
				id, date, structures[i%len(structures)])
		default:
			_, err = g.DB().Exec(`INSERT INTO activite (id, type, date, duree, type_lieu, structure_id, thematiques, materiel, titre_atelier, niveau)
				VALUES (?, 'collectif', ?, 120, 'lieu_activite', ?, '["prendre_en_main_du_materiel"]', '["tablette"]', 'Premiers pas sur la tablette', 'debutant')`,
				id, date, structures[0])
		}
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			if _, err := g.DB().Exec(`INSERT INTO participants_anonymes (id, activite_id, total, genre_feminin, genre_masculin) VALUES (?, ?, 6, 4, 2)`,
				uuid.Must(uuid.NewV7()).String(), id); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := g.DB().Exec(`INSERT INTO accompagnement (id, activite_id, beneficiaire_id) VALUES (?, ?, ?)`,
			uuid.Must(uuid.NewV7()).String(), id, bens[i%len(bens)]); err != nil {
			t.Fatal(err)
		}
	}
}
