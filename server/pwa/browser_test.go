package pwa_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

const pw = "un-mot-de-passe"

// team is a server with a coordinator, Claire, and the conseillère she
// follows, Camille, reached by the browser through a link the test can
// cut.
type team struct {
	srv     *relaistest.Server
	link    *link
	camille string // user id
}

func newTeam(t testing.TB) *team {
	t.Helper()
	srv := relaistest.StartServer(t, server.Config{})
	claire := srv.AddUser(t, "claire@exemple.fr", "coordinateur", pw)
	camille := srv.AddUser(t, "camille@exemple.fr", "conseiller", pw)
	if err := srv.WriteRow(context.Background(), "coordination", uuid.Must(uuid.NewV7()).String(), map[string]any{
		"coordinateur_id": claire.ID, "mediateur_id": camille.ID, "debut": "2025-01-01"}); err != nil {
		t.Fatal(err)
	}
	return &team{srv: srv, link: startLink(t, strings.TrimPrefix(srv.URL, "http://")), camille: camille.ID}
}

// visit is what the conseillère fills in the activity form.
type visit struct {
	kind    string // type_activite value
	minutes string // one of the proposed durations
	place   string // type_lieu value
	commune string
	themes  []string
	anonyme string // number of anonymous participants, or ""
}

// fillVisit opens the form and fills it, without saving.
func fillVisit(t testing.TB, ctx context.Context, v visit) {
	t.Helper()
	do(t, ctx, chromedp.Evaluate[chromedp.Void]("location.hash = '#/activite/nouvelle'"))
	until(t, ctx, "document.querySelector('#formulaire-activite') && document.querySelector('h1').textContent === 'Enregistrer une activité'", "the activity form")
	do(t, ctx,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="type"][value=%q]`, v.kind))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="duree"][value=%q]`, v.minutes))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="type_lieu"][value=%q]`, v.place))),
	)
	if v.commune != "" {
		do(t, ctx, chromedp.SendKeys(chromedp.CSS("#champ-commune"), v.commune))
	}
	for _, th := range v.themes {
		do(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`input[name="thematiques"][value=%q]`, th))))
	}
	if v.anonyme != "" {
		do(t, ctx, chromedp.SendKeys(chromedp.CSS("#champ-total-n"), v.anonyme))
	}
}

// save clicks the form's button and waits for the list of activities.
func save(t testing.TB, ctx context.Context) {
	t.Helper()
	do(t, ctx, chromedp.Click(chromedp.CSS("#enregistrer")))
	until(t, ctx, "document.querySelector('h1').textContent === 'Mes activités'", "the list after saving")
}

// openApp opens the app and waits until its service worker keeps it.
func openApp(t testing.TB, ctx context.Context, base string) {
	t.Helper()
	do(t, ctx, chromedp.Navigate(base+"/app/"))
	ready(t, ctx)
	until(t, ctx, "navigator.serviceWorker.ready.then(() => !!navigator.serviceWorker.controller)", "the service worker to control the page")
}

// submitLogin fills the login page as Camille, keeping the proposed
// device name, and sends it.
func submitLogin(t testing.TB, ctx context.Context) {
	t.Helper()
	if h := text(t, ctx, "h1"); h != "Connexion" {
		t.Fatalf("a first visit shows %q, want the login page", h)
	}
	do(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#champ-email"), "camille@exemple.fr"),
		chromedp.SendKeys(chromedp.CSS("#champ-password"), pw))
	if name, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#champ-appareil"))); name != "Tablette de Camille" {
		t.Errorf("the proposed device name is %q, want Tablette de Camille", name)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS("#se-connecter")))
}

// login opens the app and logs Camille in.
func login(t testing.TB, ctx context.Context, base string) {
	t.Helper()
	openApp(t, ctx, base)
	submitLogin(t, ctx)
	until(t, ctx, "document.querySelector('h1').textContent === 'Mes activités'", "her activities after login")
}

// synced waits until the browser has sent everything and its last sync
// succeeded.
func synced(t testing.TB, ctx context.Context) {
	t.Helper()
	until(t, ctx, "window.relais.status().then(s => s.pending === 0 && !s.syncing && s.lastSync !== null && s.lastError === null)", "the browser to sync")
}

// The conseillère's day in a real browser: she logs in, loses the
// network, records three visits (and is stopped by a rule on a fourth),
// reloads the app with no network at all, and everything reaches the
// server and her other device when the network returns.
func TestAppOfflineDay(t *testing.T) {
	tm := newTeam(t)
	ctx := chromium(t, 800, 1000)
	base := tm.link.URL()

	login(t, ctx, base)
	var devName string
	if err := tm.srv.DB().R.QueryRow("SELECT name FROM _devices WHERE user_id = ?", tm.camille).Scan(&devName); err != nil || devName != "Tablette de Camille" {
		t.Fatalf("the browser enrolled as %q (%v), want a device named Tablette de Camille", devName, err)
	}
	synced(t, ctx)
	// Installable: Chromium finds the manifest, its icons and the
	// service worker fit for an app on the home screen.
	inst, err := chromedp.Call(ctx, page.GetInstallabilityErrors, cdp.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range inst.InstallabilityErrors {
		t.Errorf("Chromium would not install the app: %s", e.ErrorID)
	}

	offline(t, ctx, tm.link, true)
	until(t, ctx, "document.querySelector('#reseau') && document.querySelector('#reseau').textContent === 'Hors ligne'", "the header to say Hors ligne")

	fillVisit(t, ctx, visit{kind: "individuel", minutes: "45", place: "domicile", commune: "Laval", themes: []string{"email", "aide_aux_demarches_administratives", "argent_impots"}})
	save(t, ctx)
	fillVisit(t, ctx, visit{kind: "individuel", minutes: "30", place: "autre", commune: "Saint-Berthevin", themes: []string{"navigation_sur_internet"}})
	save(t, ctx)

	// A visit that breaks a rule: an administrative theme without « Aide
	// aux démarches administratives ». Nothing is saved, the message is
	// next to the themes.
	before := count(t, ctx, "SELECT COUNT(*) FROM activite")
	fillVisit(t, ctx, visit{kind: "individuel", minutes: "60", place: "a_distance", themes: []string{"logement"}})
	do(t, ctx, chromedp.Click(chromedp.CSS("#enregistrer")))
	until(t, ctx, "!document.querySelector('#erreur-thematiques').hidden", "the rule's message next to the themes")
	contains(t, "the message next to the themes", text(t, ctx, "#erreur-thematiques"),
		"Les thématiques administratives", "« Aide aux démarches administratives »")
	contains(t, "the list of problems at the top of the form", text(t, ctx, ".resume-erreurs"), "Rien n'est enregistré", "Thématiques")
	if focused := js[string](t, ctx, "document.activeElement.className"); !strings.Contains(focused, "resume-erreurs") {
		t.Errorf("after a refused save the focus is on %q, want the list of problems", focused)
	}
	if after := count(t, ctx, "SELECT COUNT(*) FROM activite"); after != before {
		t.Fatalf("a visit breaking a rule was saved: %d activities, was %d", after, before)
	}
	// She fixes it: the theme it needs, and it saves.
	do(t, ctx, chromedp.Click(chromedp.CSS(`input[name="thematiques"][value="aide_aux_demarches_administratives"]`)))
	save(t, ctx)

	if n := count(t, ctx, "SELECT COUNT(*) FROM activite"); n != 3 {
		t.Fatalf("%d activities on the browser after three visits", n)
	}
	contains(t, "the header offline", text(t, ctx, "#etat-synchro"), "Hors ligne", "en attente d'envoi")

	// Reload with no network at all: the service worker opens the app,
	// the visits are read from the replica in OPFS.
	do(t, ctx, chromedp.Reload())
	ready(t, ctx)
	if h := text(t, ctx, "h1"); h != "Mes activités" {
		t.Fatalf("offline, the reloaded app shows %q", h)
	}
	if !js[bool](t, ctx, "performance.getEntriesByType('navigation')[0].workerStart > 0") {
		t.Error("the offline reload did not go through the service worker")
	}
	if n := js[int](t, ctx, "document.querySelectorAll('#liste-activites li').length"); n != 3 {
		t.Fatalf("offline, the reloaded app lists %d visits, want 3", n)
	}
	contains(t, "the list offline", text(t, ctx, "#liste-activites"), "Laval", "Saint-Berthevin", "À distance", "En attente d'envoi")
	contains(t, "the header after an offline reload", text(t, ctx, "#etat-synchro"), "Hors ligne")

	// The network returns: the app syncs by itself.
	offline(t, ctx, tm.link, false)
	synced(t, ctx)
	until(t, ctx, "document.querySelector('#en-attente').textContent === 'Tout est envoyé'", "the header to say everything was sent")
	if got := text(t, ctx, "#reseau"); got != "En ligne" {
		t.Errorf("the header says %q once back online", got)
	}

	// Her other device (the Go SDK) receives the three visits as written.
	other := tm.srv.LoggedInDevice(t, "telephone", "camille@exemple.fr", pw)
	if _, err := other.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, rows := relaistest.Rows(t, other.DB(), "SELECT commune, duree, type_lieu, thematiques, mediateur_id FROM activite ORDER BY duree")
	want := []string{
		"Saint-Berthevin 30 autre [\"navigation_sur_internet\"] " + tm.camille,
		"Laval 45 domicile [\"email\",\"aide_aux_demarches_administratives\",\"argent_impots\"] " + tm.camille,
		"<nil> 60 a_distance [\"aide_aux_demarches_administratives\",\"logement\"] " + tm.camille,
	}
	if len(rows) != len(want) {
		t.Fatalf("the Go device has %d activities, want 3: %v", len(rows), rows)
	}
	for i, r := range rows {
		got := fmt.Sprintf("%v %v %v %v %v", r...)
		if got != want[i] {
			t.Errorf("the Go device's activity %d is %s, want %s", i, got, want[i])
		}
	}

	t.Run("concurrent edit", func(t *testing.T) { concurrentEdit(t, tm, ctx, other) })
	t.Run("refused change fixed and sent again", func(t *testing.T) { refusedChange(t, tm, ctx, other) })
	t.Run("beneficiary recorded, erased; activity deleted", func(t *testing.T) { beneficiaries(t, tm, ctx, other) })
	t.Run("revocation wipes the browser", func(t *testing.T) { revocation(t, tm, ctx) })
}

// A concurrent edit between the browser and a Go device resolves as
// syncproto.Compare says, on every side, and the coordinator finds the
// losing value on the dashboard's conflicts page.
func concurrentEdit(t *testing.T, tm *team, ctx context.Context, other *device.Replica) {
	id := js[string](t, ctx, "window.relais.query(\"SELECT id FROM activite WHERE commune = 'Laval'\").then(r => r[0].id)")
	offline(t, ctx, tm.link, true)
	if _, err := other.DB().Exec("UPDATE activite SET duree = 90 WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Offline, the browser has not seen the 90: she sets 60 minutes.
	do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("location.hash = '#/activite/%s'", id)))
	until(t, ctx, "document.querySelector('h1').textContent === \"Modifier l'activité\"", "the edit form")
	do(t, ctx, chromedp.Click(chromedp.CSS(`input[name="duree"][value="60"]`)))
	save(t, ctx)
	offline(t, ctx, tm.link, false)
	synced(t, ctx)
	if _, err := other.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}

	var winner, loser int64
	var wv, lv syncproto.Version
	if err := tm.srv.DB().R.QueryRow(`SELECT winner_val, loser_val, winner_hlc, winner_node, loser_hlc, loser_node FROM _conflicts
		WHERE tbl = 'activite' AND pk = ? AND col = 'duree'`, id).Scan(&winner, &loser, &wv.HLC, &wv.Node, &lv.HLC, &lv.Node); err != nil {
		t.Fatalf("no conflict logged for the concurrent edit: %v", err)
	}
	if !wv.Beats(lv) {
		t.Fatalf("the server kept %d (%v) over %d (%v), which syncproto.Compare ranks higher", winner, wv, loser, lv)
	}
	if (winner != 60 || loser != 90) && (winner != 90 || loser != 60) {
		t.Fatalf("conflict between %d and %d, want 60 and 90", winner, loser)
	}
	var onServer, onGo int64
	if err := tm.srv.DB().R.QueryRow("SELECT duree FROM activite WHERE id = ?", id).Scan(&onServer); err != nil {
		t.Fatal(err)
	}
	if err := other.DB().QueryRow("SELECT duree FROM activite WHERE id = ?", id).Scan(&onGo); err != nil {
		t.Fatal(err)
	}
	inBrowser := js[int64](t, ctx, fmt.Sprintf("window.relais.query('SELECT duree FROM activite WHERE id = ?', [%q]).then(r => Number(r[0].duree))", id))
	if onServer != winner || onGo != winner || inBrowser != winner {
		t.Fatalf("after the conflict: server %d, Go device %d, browser %d; the winner is %d", onServer, onGo, inBrowser, winner)
	}

	// Claire sees it on the coordinators' conflicts page, in a tab of
	// her own.
	ctx, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	do(t, ctx, chromedp.Navigate(tm.link.URL()+"/connexion"))
	do(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#email"), "claire@exemple.fr"),
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Click(chromedp.CSS("main form button[type=submit]")))
	until(t, ctx, "document.querySelector('h1') && document.querySelector('h1').textContent === 'Conflits'", "the conflicts page")
	contains(t, "the conflicts page", text(t, ctx, "main"), "Durée (min)", "camille@exemple.fr")
	var cid int64
	if err := tm.srv.DB().R.QueryRow("SELECT id FROM _conflicts WHERE tbl = 'activite' AND pk = ? AND col = 'duree'", id).Scan(&cid); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/conflits/%d", tm.link.URL(), cid)))
	if w, l := text(t, ctx, "#valeur-gagnante"), text(t, ctx, "#valeur-ecartee"); w != fmt.Sprint(winner) || l != fmt.Sprint(loser) {
		t.Errorf("the conflict page shows %s kept over %s, want %d over %d", w, l, winner, loser)
	}
}

// Two valid edits that merge into a row breaking a rule: the server
// refuses the browser's, the header says so, the sync page gives the
// French reason, and she fixes her value and sends it again.
func refusedChange(t *testing.T, tm *team, ctx context.Context, other *device.Replica) {
	id := js[string](t, ctx, "window.relais.query(\"SELECT id FROM activite WHERE commune = 'Laval'\").then(r => r[0].id)")
	offline(t, ctx, tm.link, true)
	// Her phone moves the visit to « À distance », which needs no commune.
	if _, err := other.DB().Exec("UPDATE activite SET type_lieu = 'a_distance', commune = NULL WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Offline, the tablet still has Laval: she moves it to « Autre lieu ».
	do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("location.hash = '#/activite/%s'", id)))
	until(t, ctx, "document.querySelector('h1').textContent === \"Modifier l'activité\"", "the edit form")
	do(t, ctx, chromedp.Click(chromedp.CSS(`input[name="type_lieu"][value="autre"]`)))
	save(t, ctx)
	// Merged, « Autre lieu » with no commune breaks a rule: refused.
	offline(t, ctx, tm.link, false)
	until(t, ctx, "document.querySelector('#refus') !== null", "the header to show the refused change")
	contains(t, "the header", text(t, ctx, "#refus"), "1 modification refusée : à corriger")
	do(t, ctx, chromedp.Click(chromedp.CSS("#refus a")))
	until(t, ctx, "document.querySelector('#liste-refus') !== null", "the refused changes")
	card := text(t, ctx, "#liste-refus")
	contains(t, "the refused change", card, "Activité", "demande la commune", "Lieu : Autre lieu")
	// The tablet shows the server's version meanwhile, her value is kept.
	if lieu := js[string](t, ctx, fmt.Sprintf("window.relais.query('SELECT type_lieu FROM activite WHERE id = ?', [%q]).then(r => r[0].type_lieu)", id)); lieu != "a_distance" {
		t.Errorf("after the refusal the tablet shows type_lieu %q, want the server's a_distance", lieu)
	}
	// She chooses « À domicile » again... which needs the commune too: the
	// rule, checked on the tablet, says so and nothing is sent.
	do(t, ctx, chromedp.SetValue(chromedp.CSS(`#liste-refus select`), "domicile"), chromedp.Click(chromedp.CSS("#liste-refus .renvoyer")))
	until(t, ctx, "document.querySelector('#liste-refus .erreur-champ') && !document.querySelector('#liste-refus .erreur-champ').hidden", "the rule's message on the card")
	contains(t, "the card's message", text(t, ctx, "#liste-refus .erreur-champ"), "demande la commune")
	// « À distance » is valid: sent again, accepted.
	do(t, ctx, chromedp.SetValue(chromedp.CSS(`#liste-refus select`), "a_distance"), chromedp.Click(chromedp.CSS("#liste-refus .renvoyer")))
	until(t, ctx, "document.querySelector('#aucun-refus') !== null", "no refused change left")
	do(t, ctx, chromedp.Evaluate[chromedp.Void]("window.relais.sync().catch(() => {})"))
	synced(t, ctx)
	until(t, ctx, "window.relais.status().then(s => s.rejected === 0)", "no refused change in the SDK")
	var lieu string
	if err := tm.srv.DB().R.QueryRow("SELECT type_lieu FROM activite WHERE id = ?", id).Scan(&lieu); err != nil || lieu != "a_distance" {
		t.Errorf("the server holds type_lieu %q (%v) after her fix", lieu, err)
	}
	if n := js[int](t, ctx, "document.querySelectorAll('#refus').length"); n != 0 {
		t.Errorf("the header still shows refused changes")
	}
}

// A beneficiary recorded in the form (a rule first refuses her without a
// name), accompanied in a visit, then erased; a visit deleted. Her Go
// device sees each step.
func beneficiaries(t *testing.T, tm *team, ctx context.Context, other *device.Replica) {
	goTo := func(hash, h1 string) {
		t.Helper()
		do(t, ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("location.hash = %q", hash)))
		until(t, ctx, fmt.Sprintf("document.querySelector('h1').textContent === %q", h1), h1)
	}
	goTo("#/beneficiaire/nouveau", "Ajouter un bénéficiaire")
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#champ-prenom"), "Odile"), chromedp.Click(chromedp.CSS("#enregistrer")))
	until(t, ctx, "!document.querySelector('#erreur-nom').hidden", "the rule's message next to the name")
	contains(t, "the message next to the name", text(t, ctx, "#erreur-nom"), "Un bénéficiaire identifié (non anonyme) a un prénom et un nom")
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#champ-nom"), "Chauvin"), chromedp.SendKeys(chromedp.CSS("#champ-annee_naissance"), "1944"),
		chromedp.Click(chromedp.CSS("#enregistrer")))
	until(t, ctx, "document.querySelector('h1').textContent === 'Mes bénéficiaires'", "the beneficiaries")
	contains(t, "the beneficiaries", text(t, ctx, "#liste-beneficiaires"), "Odile Chauvin")

	fillVisit(t, ctx, visit{kind: "individuel", minutes: "90", place: "domicile", commune: "Louverné", themes: []string{"sante"}})
	contains(t, "the beneficiaries to pick", text(t, ctx, "#champ-beneficiaires .options"), "Odile Chauvin")
	do(t, ctx, chromedp.Click(chromedp.CSS(`#champ-beneficiaires .option label`)))
	// Her husband, met for the first time, typed in the visit's form:
	// without his name, the beneficiary's rule stops the save.
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#champ-nouveau_prenom"), "Marcel"), chromedp.Click(chromedp.CSS("#enregistrer")))
	until(t, ctx, "!document.querySelector('#erreur-nouveau_nom').hidden", "the rule's message next to the new person's name")
	contains(t, "the message next to the new name", text(t, ctx, "#erreur-nouveau_nom"), "a un prénom et un nom")
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#champ-nouveau_nom"), "Chauvin"))
	save(t, ctx)
	contains(t, "the list", text(t, ctx, "#liste-activites"), "Louverné", "Odile Chauvin", "Marcel Chauvin")
	synced(t, ctx)
	if _, err := other.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	var prenom, commune string
	if err := other.DB().QueryRow(`SELECT b.prenom, a.commune FROM accompagnement ac JOIN beneficiaire b ON b.id = ac.beneficiaire_id
		JOIN activite a ON a.id = ac.activite_id WHERE b.prenom = 'Odile'`).Scan(&prenom, &commune); err != nil || prenom != "Odile" || commune != "Louverné" {
		t.Fatalf("the Go device has %q accompanied in %q (%v), want Odile in Louverné", prenom, commune, err)
	}
	var both int
	if err := other.DB().QueryRow(`SELECT COUNT(*) FROM accompagnement ac JOIN beneficiaire b ON b.id = ac.beneficiaire_id
		JOIN activite a ON a.id = ac.activite_id WHERE a.commune = 'Louverné' AND b.nom = 'Chauvin' AND b.prenom IN ('Odile', 'Marcel')`).Scan(&both); err != nil || both != 2 {
		t.Fatalf("the Go device has %d of Odile and Marcel accompanied in Louverné (%v), want both", both, err)
	}

	// Erased at her request.
	id := js[string](t, ctx, "window.relais.query(\"SELECT id FROM beneficiaire WHERE prenom = 'Odile'\").then(r => r[0].id)")
	goTo("#/beneficiaire/"+id, "Odile Chauvin")
	do(t, ctx, chromedp.Click(chromedp.CSS("#effacer")))
	contains(t, "the erasure's confirmation", text(t, ctx, ".confirmer"), "de tous les autres à leur prochaine synchronisation", "C'est définitif")
	do(t, ctx, chromedp.Click(chromedp.CSS("#confirmer-effacement")))
	until(t, ctx, "document.querySelector('h1').textContent === 'Mes bénéficiaires'", "the beneficiaries after the erasure")
	if got := text(t, ctx, "#liste-beneficiaires"); strings.Contains(got, "Odile") || !strings.Contains(got, "Bénéficiaire anonyme") {
		t.Errorf("after the erasure the list shows:\n%s", got)
	}
	synced(t, ctx)
	if _, err := other.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	var anon int
	var nom, annee any
	if err := other.DB().QueryRow("SELECT anonyme, nom, annee_naissance FROM beneficiaire WHERE id = ?", id).Scan(&anon, &nom, &annee); err != nil ||
		anon != 1 || nom != nil || fmt.Sprint(annee) != "1944" {
		t.Errorf("on the Go device the erased beneficiary is anonyme=%d nom=%v annee=%v (%v); want anonymous, no name, the year kept", anon, nom, annee, err)
	}

	// The Louverné visit deleted.
	act := js[string](t, ctx, "window.relais.query(\"SELECT id FROM activite WHERE commune = 'Louverné'\").then(r => r[0].id)")
	goTo("#/activite/"+act, "Modifier l'activité")
	do(t, ctx, chromedp.Click(chromedp.CSS("#supprimer")), chromedp.Click(chromedp.CSS("#confirmer-suppression")))
	until(t, ctx, "document.querySelector('h1').textContent === 'Mes activités'", "the list after deleting")
	if strings.Contains(text(t, ctx, "main"), "Louverné") {
		t.Error("the deleted visit is still listed")
	}
	synced(t, ctx)
	if _, err := other.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := other.DB().QueryRow("SELECT COUNT(*) FROM activite WHERE id = ?", act).Scan(&n); err != nil || n != 0 {
		t.Errorf("the Go device still has the deleted visit (%d, %v)", n, err)
	}
	if err := other.DB().QueryRow("SELECT COUNT(*) FROM accompagnement WHERE activite_id = ?", act).Scan(&n); err != nil || n != 0 {
		t.Errorf("the Go device still has the deleted visit's accompaniment (%d, %v)", n, err)
	}
}

// Revoked from the dashboard, the browser is wiped at its next contact
// and says so.
func revocation(t *testing.T, tm *team, ctx context.Context) {
	var dev string
	if err := tm.srv.DB().R.QueryRow("SELECT id FROM _devices WHERE name = 'Tablette de Camille'").Scan(&dev); err != nil {
		t.Fatal(err)
	}
	// Claire, in her own tab, logged in to the dashboard, revokes the
	// tablet from the fleet page.
	claire, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	do(t, claire, chromedp.Navigate(tm.link.URL()+"/connexion"))
	do(t, claire,
		chromedp.SendKeys(chromedp.CSS("#email"), "claire@exemple.fr"),
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.Click(chromedp.CSS("main form button[type=submit]")))
	until(t, claire, "document.querySelector('h1') && document.querySelector('h1').textContent === 'Conflits'", "the dashboard")
	do(t, claire, chromedp.Navigate(tm.link.URL()+"/flotte"))
	contains(t, "the fleet page", text(t, claire, "#appareil-"+dev), "Tablette de Camille")
	do(t, claire, chromedp.Navigate(fmt.Sprintf("%s/flotte/%s/revocation", tm.link.URL(), dev)))
	do(t, claire, chromedp.Click(chromedp.CSS("#confirmer-revocation")))
	until(t, claire, fmt.Sprintf("document.querySelector('#appareil-%s') && document.querySelector('#appareil-%s').textContent.includes('Révoqué')", dev, dev), "the fleet to show the tablet revoked")

	if n := count(t, ctx, "SELECT COUNT(*) FROM activite"); n == 0 {
		t.Fatal("the browser had nothing before its revocation reached it")
	}
	res := js[string](t, ctx, "window.relais.sync().then(r => 'ok ' + JSON.stringify(r), e => 'err ' + e.code + ' ' + e.message)")
	if !strings.HasPrefix(res, "err device_revoked") {
		t.Errorf("the revoked browser's sync answered %s, want device_revoked", res)
	}
	until(t, ctx, "document.querySelector('#revoque') !== null", "the app to say the device was revoked")
	contains(t, "the page after revocation", text(t, ctx, "main"), "Connexion", "révoqué", "effacées")
	for _, table := range []string{"activite", "beneficiaire", "accompagnement", "_outbox"} {
		if n := count(t, ctx, "SELECT COUNT(*) FROM "+table); n != 0 {
			t.Errorf("the revoked browser still holds %d rows of %s", n, table)
		}
	}
}

// countPulled starts adding up, in the page, the cells every sync
// reports pulled (its progress events count from 1 again at each new
// sync).
func countPulled(t testing.TB, ctx context.Context) {
	t.Helper()
	do(t, ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		window.pulledDone = 0; let last = null;
		window.relais.on('progress', (p) => {
			if (last && p.exchanges < last.exchanges) window.pulledDone += last.pulled;
			last = p; window.pulledLast = p.pulled;
		});
		window.pulledSum = () => window.pulledDone + (window.pulledLast || 0);
	})()`))
}

func pulled(t testing.TB, ctx context.Context) int {
	t.Helper()
	return js[int](t, ctx, "window.pulledSum()")
}

// A first sync cut in the middle of its pull resumes where it stopped:
// the pages already applied stay, and the rest costs what was left, not
// everything again. A clean first sync is measured first, on another
// browser, for comparison.
func TestAppPullResumes(t *testing.T) {
	tm := newTeam(t)
	// Camille's season, recorded on her Go device: 1,500 visits, three pages of a first sync.
	g := tm.srv.LoggedInDevice(t, "tablette", "camille@exemple.fr", pw)
	tx, err := g.DB().Begin()
	if err != nil {
		t.Fatal(err)
	}
	const visits = 1500
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for i := range visits {
		if _, err := tx.Exec(`INSERT INTO activite (id, type, date, duree, type_lieu, commune, thematiques, materiel, autonomie)
			VALUES (?, 'individuel', ?, 45, 'domicile', 'Laval', '["email"]', '["tablette"]', 'autonome')`,
			uuid.Must(uuid.NewV7()).String(), day.AddDate(0, 0, i%300).Format("2006-01-02")); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A clean first sync, for its size.
	clean := chromium(t, 800, 900)
	openApp(t, clean, tm.link.URL())
	countPulled(t, clean)
	start := tm.link.Down()
	submitLogin(t, clean)
	synced(t, clean)
	if n := count(t, clean, "SELECT COUNT(*) FROM activite"); n != visits {
		t.Fatalf("a clean first sync brought %d visits, want %d", n, visits)
	}
	full := tm.link.Down() - start
	cells := pulled(t, clean)

	// The same first sync on another browser, cut halfway.
	ctx := chromium(t, 800, 900)
	openApp(t, ctx, tm.link.URL())
	countPulled(t, ctx)
	start = tm.link.Down()
	cut := tm.link.CutAfter(full / 2)
	submitLogin(t, ctx)
	select {
	case <-cut:
	case <-time.After(time.Minute):
		t.Fatal("the link was never cut: the first sync downloaded less than half of what a clean one did")
	}
	// The sync goes on trying; what it applied before the cut stays.
	until(t, ctx, "window.relais && window.relais.query('SELECT COUNT(*) AS n FROM activite').then(r => r[0].n > 0)", "the pages applied before the cut")
	kept := count(t, ctx, "SELECT COUNT(*) FROM activite")
	if kept == 0 || kept >= visits {
		t.Fatalf("after a cut halfway the browser kept %d visits; want some, not all, of %d", kept, visits)
	}
	// The network returns (the browser is told, as a tablet would be).
	offline(t, ctx, tm.link, true)
	offline(t, ctx, tm.link, false)
	synced(t, ctx)
	if n := count(t, ctx, "SELECT COUNT(*) FROM activite"); n != visits {
		t.Fatalf("after resuming, the browser has %d visits, want %d", n, visits)
	}
	total := tm.link.Down() - start
	again := pulled(t, ctx)
	t.Logf("first sync: %d cells and %d bytes clean; cut at half: %d visits kept, then %d cells and %d bytes in all", cells, full, kept, again, total)
	// Started again, it would have pulled the kept visits twice.
	if again >= cells+kept*5 {
		t.Errorf("a first sync cut halfway pulled %d cells in all, a clean one %d, and %d visits were kept at the cut: it started again instead of resuming", again, cells, kept)
	}
	if again < cells {
		t.Errorf("the resumed sync pulled %d cells, fewer than a clean one (%d)", again, cells)
	}
}
