package web_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/relais-numerique/relais/internal/relaistest"
)

func TestXLSXExportAndStatisticsCSV(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		w := newWorldOn(t, e)
		claire := newBrowser(t, w.srv.URL)
		claire.login("claire@exemple.fr")

		resp, err := claire.c.Get(w.srv.URL + "/exports/activites.xlsx?du=2026-01-01&au=2026-12-31")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.Contains(ct, "spreadsheetml") {
			t.Fatalf("XLSX export: status %d, type %q", resp.StatusCode, ct)
		}
		if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, `filename="relais-activites-2026-01-01-2026-12-31.xlsx"`) {
			t.Errorf("XLSX export named %q", cd)
		}
		f, err := excelize.OpenReader(resp.Body)
		if err != nil {
			t.Fatalf("the XLSX export does not open: %v", err)
		}
		defer f.Close()
		rows, err := f.GetRows("Activités")
		if err != nil {
			t.Fatalf("no sheet Activités: %v (sheets %v)", err, f.GetSheetList())
		}
		if len(rows) != 2 {
			t.Fatalf("XLSX has %d rows, want a header and Alice's activity: %v", len(rows), rows)
		}
		got := map[string]string{}
		for i, h := range rows[0] {
			if i < len(rows[1]) {
				got[h] = rows[1][i]
			}
		}
		for h, v := range map[string]string{"Type d'activité": "Accompagnement individuel", "Type de lieu": "À domicile",
			"Commune": "Laval", "Durée (min)": "45", "Tranche de durée": "30 min à 1 h", "Conseiller": "alice@exemple.fr"} {
			if got[h] != v {
				t.Errorf("XLSX column %q = %q, want %q", h, got[h], v)
			}
		}
		if _, ok := got["Notes"]; ok {
			t.Errorf("a coordinator's XLSX export has a Notes column")
		}
		if typ, _ := f.GetCellType("Activités", "H2"); typ != excelize.CellTypeNumber && typ != excelize.CellTypeUnset {
			t.Errorf("duration is stored as %v, want a number a spreadsheet can sum", typ)
		}

		// Filters by theme (a value inside the JSON list) and activity type.
		for q, want := range map[string]int{"thematique=argent_impots": 1, "thematique=sante": 0, "type=individuel": 1,
			"type=collectif": 0, "lieu=domicile": 1, "lieu=a_distance": 0, "conseiller=" + w.alice.ID: 1, "conseiller=" + w.bruno.ID: 0} {
			var st struct {
				Activities int `json:"activites"`
			}
			if code := claire.api("GET", "/v1/dashboard/stats?du=2026-01-01&au=2026-12-31&"+q, "", nil, &st); code != http.StatusOK || st.Activities != want {
				t.Errorf("stats filtered by %s: status %d, %d activities, want %d", q, code, st.Activities, want)
			}
		}
		if code := claire.api("GET", "/v1/dashboard/stats?du=2026-13-01", "", nil, nil); code != http.StatusBadRequest {
			t.Errorf("a malformed date: status %d, want 400", code)
		}

		status, body := claire.get("/exports/statistiques.csv?du=2026-01-01&au=2026-12-31")
		if status != http.StatusOK {
			t.Fatalf("statistics CSV: %d", status)
		}
		for _, line := range []string{"Répartition;Catégorie;Nombre;Part (%)", "Total;Activités;1;", "Total;Personnes accompagnées (comptées une fois);1;", "Total;Participations anonymes à des ateliers (chaque présence);0;",
			"Type de lieu;À domicile;1;100", "Tranche d'âge;70 ans et plus;1;100", "Statut social;Retraité;1;100",
			"Thématique;Argent - Impôts;1;", "Commune;Laval;1;100"} {
			if !strings.Contains(body, line) {
				t.Errorf("statistics CSV lacks %q:\n%s", line, body)
			}
		}
		if strings.Contains(body, "Mayenne") {
			t.Errorf("statistics CSV counts another team:\n%s", body)
		}
	})
}

// A coordinator counts a médiateur's activities only while coordinating
// them, and no longer sees their devices or conflicts once it ended.
func TestCoordinationWindow(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		w := newWorldOn(t, e)
		ctx := context.Background()
		eve := w.srv.AddUser(t, "eve@exemple.fr", "coordinateur", pw)
		if err := w.srv.WriteRow(ctx, "coordination", newID(), map[string]any{
			"coordinateur_id": eve.ID, "mediateur_id": w.bruno.ID, "debut": "2026-03-01", "fin": "2026-06-30"}); err != nil {
			t.Fatal(err)
		}
		brunoT := w.srv.LoggedInDevice(t, "bruno", "bruno@exemple.fr", pw)
		for _, d := range []string{"2026-02-15", "2026-05-10", "2026-09-01"} {
			act, _ := record(t, brunoT, w.bruno.ID, "Louis", "Bernard", "Craon", "53084")
			if _, err := brunoT.DB().ExecContext(ctx, "UPDATE activite SET date = ? WHERE id = ?", d, act); err != nil {
				t.Fatal(err)
			}
		}
		syncOK(t, brunoT)

		b := newBrowser(t, w.srv.URL)
		b.login("eve@exemple.fr")
		var st struct {
			Activities int `json:"activites"`
			ByMonth    []struct {
				Key   string `json:"key"`
				Count int    `json:"count"`
			} `json:"par_mois"`
		}
		if code := b.api("GET", "/v1/dashboard/stats?du=2026-01-01&au=2026-12-31", "", nil, &st); code != http.StatusOK {
			t.Fatalf("stats: %d", code)
		}
		if st.Activities != 1 {
			t.Errorf("Eve counts %d of Bruno's activities; want only May's, inside the coordination", st.Activities)
		}
		for _, m := range st.ByMonth {
			if m.Count > 0 && m.Key != "2026-05" {
				t.Errorf("Eve's statistics count %d activities in %s, outside the coordination", m.Count, m.Key)
			}
		}
		_, csvBody := b.get("/exports/activites.csv?du=2026-01-01&au=2026-12-31")
		if strings.Count(csvBody, "\n") != 2 || !strings.Contains(csvBody, "10/05/2026") {
			t.Errorf("Eve's export should hold May's activity only:\n%s", csvBody)
		}
		// The coordination ended in June: Bruno's tablet is no longer hers to
		// see or revoke.
		var devs struct {
			Devices []any `json:"devices"`
		}
		if code := b.api("GET", "/v1/dashboard/devices", "", nil, &devs); code != http.StatusOK || len(devs.Devices) != 0 {
			t.Errorf("Eve sees %d devices after her coordination ended", len(devs.Devices))
		}
		if code := b.api("POST", "/v1/dashboard/devices/"+brunoT.Node()+"/revoke", b.sessionCSRF(), nil, nil); code != http.StatusNotFound {
			t.Errorf("Eve revoking Bruno's tablet after the coordination: status %d, want 404", code)
		}
		if !bytes.Contains([]byte(csvBody), []byte("\ufeffDate;")) {
			t.Errorf("CSV does not start with a BOM and the Date header")
		}
	})
}
