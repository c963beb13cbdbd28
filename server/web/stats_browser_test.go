package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

// statsWorld is a team whose right numbers are known: Alice met Jeanne
// three times and Marc once (two people, four accompaniments), and ran
// two workshops with 5 and 1,200 anonymous presences; one of her
// activities was at an itinerant stop. Bruno recorded one activity.
type statsWorld struct {
	srv                  *relaistest.Server
	claire, alice, bruno auth.User
}

func newStatsWorld(t *testing.T) *statsWorld {
	t.Helper()
	ctx := context.Background()
	w := &statsWorld{srv: relaistest.StartServer(t, server.Config{})}
	acc := &auth.Accounts{W: w.srv.DB().W, R: w.srv.DB().R}
	add := func(email, role, name string) auth.User {
		u := w.srv.AddUser(t, email, role, pw)
		if err := acc.SetName(ctx, email, name); err != nil {
			t.Fatal(err)
		}
		return u
	}
	w.claire = add("claire@exemple.fr", "coordinateur", "Claire Martin")
	w.alice = add("alice@exemple.fr", "conseiller", "Alice Durand")
	w.bruno = add("bruno@exemple.fr", "conseiller", "Bruno Petit")
	write := func(table, id string, v map[string]any) {
		t.Helper()
		if err := w.srv.WriteRow(ctx, table, id, v); err != nil {
			t.Fatalf("write %s: %v", table, err)
		}
	}
	for _, m := range []string{w.alice.ID, w.bruno.ID} {
		write("coordination", newID(), map[string]any{"coordinateur_id": w.claire.ID, "mediateur_id": m, "debut": "2020-01-01"})
	}
	day := time.Now().In(time.UTC).AddDate(0, 0, -3).Format(time.DateOnly)
	panda, fixed := newID(), newID()
	write("structure", panda, map[string]any{"nom": "PANDA", "commune": "Laval", "itinerance": "itinerant"})
	write("structure", fixed, map[string]any{"nom": "France Services de Craon", "commune": "Craon", "itinerance": "fixe"})
	ben := func(prenom string) string {
		id := newID()
		write("beneficiaire", id, map[string]any{"mediateur_id": w.alice.ID, "anonyme": int64(0), "prenom": prenom, "nom": "Test",
			"genre": "feminin", "tranche_age": "soixante_dix_plus", "statut_social": "retraite"})
		return id
	}
	jeanne, marc := ben("Jeanne"), ben("Marc")
	activity := func(owner, typ, lieu, structure string) string {
		id := newID()
		v := map[string]any{"mediateur_id": owner, "type": typ, "date": day, "duree": int64(60), "type_lieu": lieu, "commune": "Laval"}
		if structure != "" {
			v["structure_id"] = structure
		}
		write("activite", id, v)
		return id
	}
	for i, b := range []string{jeanne, jeanne, jeanne, marc} {
		lieu, st := "domicile", ""
		if i == 0 {
			lieu, st = "lieu_activite", panda
		} else if i == 1 {
			lieu, st = "lieu_activite", fixed
		}
		act := activity(w.alice.ID, "individuel", lieu, st)
		write("accompagnement", newID(), map[string]any{"mediateur_id": w.alice.ID, "activite_id": act, "beneficiaire_id": b})
	}
	for _, n := range []int64{5, 1200} {
		act := activity(w.alice.ID, "collectif", "lieu_activite", fixed)
		write("participants_anonymes", newID(), map[string]any{"mediateur_id": w.alice.ID, "activite_id": act, "total": n})
	}
	activity(w.bruno.ID, "individuel", "a_distance", "")
	return w
}

func optionTexts(t *testing.T, ctx context.Context, css string) []string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string]("Array.from(document.querySelectorAll("+jsQuote(css)+")).map(e => e.textContent.trim())"))
	if err != nil {
		t.Fatalf("read %s: %v", css, err)
	}
	return v
}

func jsQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "\\'") + "'" }

// The statistics as people read them, in Chromium: people counted once
// and anonymous presences apart, French digit groups, names instead of
// e-mails (without the coordinator herself), and one set of place labels
// in the filter, the chart and both CSV exports.
func TestStatisticsInChromium(t *testing.T) {
	w := newStatsWorld(t)
	ctx := chromium(t)
	loginInBrowser(t, ctx, w.srv.URL, "claire@exemple.fr")
	navigate(t, ctx, chromedp.Navigate(w.srv.URL+"/statistiques"))

	const nb = "\u202f"
	for css, want := range map[string]string{
		"#kpi-activites":       "7",
		"#kpi-beneficiaires":   "2",
		"#kpi-anonymes":        "1" + nb + "205",
		"#kpi-accompagnements": "1" + nb + "210", // 4 named + 1,205 anonymous + Bruno's unnamed one
		"#kpi-heures":          "7 h",
	} {
		if got := text(t, ctx, css); got != want {
			t.Errorf("%s shows %q, want %q", css, got, want)
		}
	}
	page := pageText(t, ctx)
	for _, want := range []string{"personnes accompagnées", "participations anonymes", "comptés une fois"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not say what it counts (%q)", want)
		}
	}

	// Names, not e-mails, and not the coordinator herself.
	people := optionTexts(t, ctx, "#conseiller option")
	if !slices.Equal(people, []string{"Tous", "Alice Durand", "Bruno Petit"}) {
		t.Errorf("conseiller filter: %q", people)
	}
	byPerson := strings.Join(optionTexts(t, ctx, "section[aria-labelledby=h-conseiller] tbody td:first-child"), ", ")
	if byPerson != "Alice Durand, Bruno Petit" {
		t.Errorf("Activités par conseiller: %q", byPerson)
	}

	// One set of place labels: the filter's, the chart's, the exports'.
	filter := optionTexts(t, ctx, "#lieu option")[1:] // after "Tous"
	chart := optionTexts(t, ctx, "section[aria-labelledby=h-lieu] tbody td:first-child")
	if !slices.Equal(filter, chart) || !slices.Contains(chart, "Arrêt itinérant") {
		t.Errorf("place labels differ: filter %q, chart %q", filter, chart)
	}
	statsCSV := readCSV(t, download(t, ctx, "#export-stats-csv"))
	var exported []string
	for _, r := range statsCSV {
		if r[0] == "Type de lieu" {
			exported = append(exported, r[1])
		}
	}
	if !slices.Equal(exported, chart) {
		t.Errorf("statistics CSV place labels %q, chart %q", exported, chart)
	}
	navigate(t, ctx, chromedp.Navigate(w.srv.URL+"/exports"))
	acts := readCSV(t, download(t, ctx, "#export-activites-csv"))
	col := slices.IndexFunc(acts[0], func(h string) bool { return strings.Contains(strings.ToLower(h), "lieu") })
	if col < 0 {
		t.Fatalf("activities CSV has no place column: %q", acts[0])
	}
	seen := map[string]bool{}
	for _, r := range acts[1:] {
		if !slices.Contains(chart, r[col]) {
			t.Errorf("activities CSV place %q is not one of the chart's %q", r[col], chart)
		}
		seen[r[col]] = true
	}
	if !seen["Arrêt itinérant"] || !seen["Permanence (lieu d'activité)"] {
		t.Errorf("activities CSV places: %v", seen)
	}
	// The filter by an itinerant stop keeps exactly that activity.
	navigate(t, ctx, chromedp.Navigate(w.srv.URL+"/statistiques?lieu=itinerant"))
	if got := text(t, ctx, "#kpi-activites"); got != "1" {
		t.Errorf("filtered on Arrêt itinérant: %s activities, want 1", got)
	}

	// A conseillère sees neither the people filter nor the coordinators' note.
	logoutInBrowser(t, ctx)
	loginInBrowser(t, ctx, w.srv.URL, "alice@exemple.fr")
	navigate(t, ctx, chromedp.Navigate(w.srv.URL+"/statistiques"))
	if n := count(t, ctx, "#conseiller"); n != 0 {
		t.Errorf("a conseillère sees the people filter")
	}
	if page := pageText(t, ctx); strings.Contains(page, "Un coordinateur compte") || strings.Contains(page, "Activités par conseiller") {
		t.Errorf("a conseillère sees notes meant for coordinators")
	}
}

func readCSV(t *testing.T, data []byte) [][]string {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	r.Comma = ';'
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("read CSV: %v\n%s", err, data)
	}
	return recs
}
