package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
)

// statsRow is a domain row the statistics test writes, the same on both
// engines; owner names a person of the test, replaced by their id.
type statsRow struct {
	table string
	vals  map[string]any
}

// TestStatisticsAndExportsAlikeOnBothEngines: the statistics, the
// activity list (with each filter of the page) and the exports read the
// same rows to the same answers on SQLite and on PostgreSQL, for a
// coordinator (inside the coordinations' dates, no personal data) and for
// a conseillère (her own beneficiaries' names). Each answer is also
// checked for what it must hold, so that two engines wrong alike fail.
// Each login lands on the conflicts list, which runs its query too.
func TestStatisticsAndExportsAlikeOnBothEngines(t *testing.T) {
	ctx := context.Background()
	schema := relaistest.DomainSchema(t)
	ids := map[string]string{} // fixed row ids, the same on both engines
	id := func(name string) string {
		if ids[name] == "" {
			ids[name] = newID()
		}
		return ids[name]
	}
	people := []struct{ key, email, role string }{
		{"claire", "claire@exemple.fr", auth.RoleCoordinateur}, {"alice", "alice@exemple.fr", auth.RoleConseiller},
		{"bruno", "bruno@exemple.fr", auth.RoleConseiller}, {"denis", "denis@exemple.fr", auth.RoleCoordinateur},
		{"carole", "carole@exemple.fr", auth.RoleConseiller},
	}
	rows := []statsRow{
		{"structure", map[string]any{"id": id("panda"), "nom": "PANDA (triporteur)", "commune": "Laval", "code_insee": "53130", "itinerance": `["itinerant"]`}},
		{"structure", map[string]any{"id": id("fs"), "nom": "France services Mayenne", "commune": "Mayenne", "code_insee": "53147", "itinerance": `["fixe"]`}},
		{"coordination", map[string]any{"id": id("co1"), "coordinateur_id": "claire", "mediateur_id": "alice", "debut": "2025-01-01"}},
		{"coordination", map[string]any{"id": id("co2"), "coordinateur_id": "claire", "mediateur_id": "bruno", "debut": "2026-06-01"}},
		{"coordination", map[string]any{"id": id("co3"), "coordinateur_id": "denis", "mediateur_id": "carole", "debut": "2025-01-01"}},
		// Alice: a home visit with a named beneficiary, and a workshop at
		// the tricycle's stop with anonymous participants.
		{"beneficiaire", map[string]any{"id": id("jeanne"), "mediateur_id": "alice", "anonyme": 0, "prenom": "Jeanne", "nom": "Lefebvre",
			"genre": "feminin", "tranche_age": "soixante_dix_plus", "statut_social": "retraite", "commune": "Laval"}},
		{"activite", map[string]any{"id": id("a1"), "mediateur_id": "alice", "type": "individuel", "date": "2026-11-20", "duree": 45,
			"type_lieu": "domicile", "commune": "Laval", "code_insee": "53130", "thematiques": `["email","argent_impots"]`,
			"materiel": `["tablette"]`, "autonomie": "partiellement_autonome", "notes": "revoir le mot de passe"}},
		{"accompagnement", map[string]any{"id": id("acc1"), "mediateur_id": "alice", "activite_id": id("a1"), "beneficiaire_id": id("jeanne"), "premier_accompagnement": 1}},
		{"activite", map[string]any{"id": id("a2"), "mediateur_id": "alice", "type": "collectif", "date": "2026-10-02T14:00", "duree": 120,
			"type_lieu": "lieu_activite", "structure_id": id("panda"), "thematiques": `["navigation_sur_internet"]`}},
		{"participants_anonymes", map[string]any{"id": id("p2"), "mediateur_id": "alice", "activite_id": id("a2"), "total": 5,
			"genre_feminin": 3, "genre_masculin": 2, "tranche_age_soixante_dix_plus": 5, "statut_social_retraite": 4, "statut_social_non_communique": 1}},
		// Bruno: one activity before his coordination began (Claire must
		// not count it), one after at a fixed place, one with no place
		// and a list that is not JSON.
		{"activite", map[string]any{"id": id("a3"), "mediateur_id": "bruno", "type": "individuel", "date": "2026-03-01", "duree": 20, "type_lieu": "domicile"}},
		{"activite", map[string]any{"id": id("a4"), "mediateur_id": "bruno", "type": "individuel", "date": "2026-07-01", "duree": 30,
			"type_lieu": "lieu_activite", "structure_id": id("fs"), "thematiques": `["email"]`}},
		{"activite", map[string]any{"id": id("a5"), "mediateur_id": "bruno", "type": "individuel", "date": "2026-08-15", "thematiques": "pas du JSON"}},
		// Carole, in another team.
		{"beneficiaire", map[string]any{"id": id("paul"), "mediateur_id": "carole", "anonyme": 0, "prenom": "Paul", "nom": "Marchand"}},
		{"activite", map[string]any{"id": id("a6"), "mediateur_id": "carole", "type": "individuel", "date": "2026-11-21", "duree": 60,
			"type_lieu": "domicile", "thematiques": `["email"]`}},
		{"accompagnement", map[string]any{"id": id("acc6"), "mediateur_id": "carole", "activite_id": id("a6"), "beneficiaire_id": id("paul")}},
	}
	period := "du=2026-01-01&au=2026-12-31"
	type query struct {
		who, path string
		want      []string // activities expected, for the activity lists
	}
	queries := []query{
		{"claire", "/v1/dashboard/activities?" + period, []string{"a1", "a2", "a4", "a5"}},
		{"claire", "/v1/dashboard/activities?" + period + "&thematique=email", []string{"a1", "a4"}},
		{"claire", "/v1/dashboard/activities?" + period + "&lieu=itinerant", []string{"a2"}},
		{"claire", "/v1/dashboard/activities?" + period + "&lieu=lieu_activite", []string{"a4"}},
		{"claire", "/v1/dashboard/activities?" + period + "&lieu=non_renseigne", []string{"a5"}},
		{"claire", "/v1/dashboard/activities?" + period + "&lieu=domicile&conseiller=ALICE", []string{"a1"}},
		{"claire", "/v1/dashboard/activities?" + period + "&structure=" + id("fs") + "&type=individuel", []string{"a4"}},
		{"alice", "/v1/dashboard/activities?" + period, []string{"a1", "a2"}},
		{"denis", "/v1/dashboard/activities?" + period, []string{"a6"}},
		{"claire", "/v1/dashboard/stats?" + period, nil},
		{"alice", "/v1/dashboard/stats?" + period, nil},
		{"claire", "/exports/activites.csv?" + period, nil},
		{"claire", "/exports/statistiques.csv?" + period, nil},
		{"alice", "/exports/activites.csv?" + period, nil},
	}
	answers := map[string][]string{} // engine -> answer of each query, ids named
	for _, e := range relaistest.Engines() {
		t.Run(e.Name, func(t *testing.T) {
			db := e.Open(t, e.New(t))
			acc := &auth.Accounts{W: db.W, R: db.R}
			users := map[string]string{} // key -> user id
			for _, p := range people {
				u, err := acc.AddUser(ctx, p.email, p.role, pw)
				if err != nil {
					t.Fatal(err)
				}
				users[p.key] = u.ID
			}
			for _, r := range rows {
				insertRow(t, db, r, users)
			}
			base := dashboardWith(t, db, schema)
			browsers := map[string]*browser{}
			for _, p := range people {
				browsers[p.key] = newBrowser(t, base)
				browsers[p.key].login(p.email)
			}
			// Answers name rows and people by the test's names, so that
			// the two engines' answers compare.
			var names []string
			for k, v := range ids {
				names = append(names, v, "<"+k+">")
			}
			for k, v := range users {
				names = append(names, v, "<"+k+">")
			}
			rename := strings.NewReplacer(names...)
			for _, q := range queries {
				path := strings.ReplaceAll(q.path, "conseiller=ALICE", "conseiller="+url.QueryEscape(users["alice"]))
				st, body := browsers[q.who].get(path)
				if st != http.StatusOK {
					t.Fatalf("%s GET %s: status %d: %s", q.who, q.path, st, body)
				}
				answers[e.Name] = append(answers[e.Name], rename.Replace(body))
				if q.want != nil {
					var got struct {
						Activities []struct {
							ID    string   `json:"id"`
							Names []string `json:"beneficiaires_noms"`
							Notes string   `json:"notes"`
							Count int      `json:"beneficiaires"`
							Anon  int      `json:"participants_anonymes"`
						} `json:"activities"`
					}
					if err := json.Unmarshal([]byte(body), &got); err != nil {
						t.Fatalf("%s: %v", q.path, err)
					}
					var list []string
					for _, a := range got.Activities {
						list = append(list, strings.Trim(rename.Replace(a.ID), "<>"))
						if a.ID == id("a1") && (a.Count != 1 || (q.who == "alice") != slices.Equal(a.Names, []string{"Jeanne Lefebvre"}) ||
							(q.who == "alice") != (a.Notes != "")) {
							t.Errorf("%s sees the home visit as %+v", q.who, a)
						}
						if a.ID == id("a2") && a.Anon != 5 {
							t.Errorf("%s counts %d anonymous participants at the workshop, want 5", q.who, a.Anon)
						}
					}
					slices.Sort(list)
					if !slices.Equal(list, q.want) {
						t.Errorf("%s GET %s: activities %v, want %v", q.who, q.path, list, q.want)
					}
				}
			}
			var st struct {
				Activities    int   `json:"activites"`
				Beneficiaries int   `json:"beneficiaires"`
				Anonymous     int   `json:"participations_anonymes"`
				Minutes       int64 `json:"duree_totale_min"`
			}
			if _, body := browsers["claire"].get("/v1/dashboard/stats?" + period); json.Unmarshal([]byte(body), &st) != nil ||
				st.Activities != 4 || st.Beneficiaries != 1 || st.Anonymous != 5 || st.Minutes != 45+120+30 {
				t.Errorf("Claire's statistics: %+v, want 4 activities, 1 beneficiary, 5 anonymous, 195 min", st)
			}
			for _, page := range []string{"/statistiques?" + period, "/exports"} {
				if st, body := browsers["claire"].get(page); st != http.StatusOK || !strings.Contains(body, "PANDA") {
					t.Errorf("Claire's page %s: status %d, or the structures are not offered", page, st)
				}
			}
		})
	}
	sqlite, pg := answers["sqlite"], answers["postgres"]
	if len(sqlite) != len(queries) || len(pg) != len(queries) {
		t.Fatalf("answers: %d on SQLite, %d on PostgreSQL, for %d queries", len(sqlite), len(pg), len(queries))
	}
	for i, q := range queries {
		if sqlite[i] != pg[i] {
			t.Errorf("%s GET %s answers differently:\nSQLite:     %s\nPostgreSQL: %s", q.who, q.path, sqlite[i], pg[i])
		}
	}
}

// insertRow writes a domain row directly, the people's names replaced by
// their ids.
func insertRow(t *testing.T, db *store.DB, r statsRow, users map[string]string) {
	t.Helper()
	var cols, marks []string
	var args []any
	for c, v := range r.vals {
		if s, ok := v.(string); ok && users[s] != "" && strings.HasSuffix(c, "_id") {
			v = users[s]
		}
		cols = append(cols, `"`+c+`"`)
		marks = append(marks, "?")
		args = append(args, v)
	}
	q := "INSERT INTO " + r.table + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
	if _, err := db.W.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
