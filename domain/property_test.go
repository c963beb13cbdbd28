package domain_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"pgregory.net/rapid"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
)

// oracle states the Coop's activity rules again, in Go and from the
// reference rather than from the SQL, and returns the names of those a
// row breaks. The property test holds the SQL to it.
func oracle(row map[string]any) []string {
	var broken []string
	str := func(c string) string { s, _ := row[c].(string); return s }
	filled := func(c string) bool { return strings.TrimSpace(str(c)) != "" }
	// thematiques: a JSON array (arrayOK) whose text members are strs;
	// valid when every member is a known theme, once.
	var strs []string
	raw, present := row["thematiques"].(string)
	var arr []any
	arrayOK := present && json.Unmarshal([]byte(raw), &arr) == nil && arr != nil
	themesOK := !present || arrayOK
	all, _ := domain.Lookup(domain.Thematique)
	for _, m := range arr {
		s, ok := m.(string)
		if !ok || !slices.Contains(all.Values(), s) || slices.Contains(strs, s) {
			themesOK = false
		}
		if ok {
			strs = append(strs, s)
		}
	}
	if !themesOK {
		broken = append(broken, "enum_activite_thematiques")
	}
	aide := slices.Contains(strs, domain.AideAuxDemarches)
	if arrayOK && !aide {
		for _, o := range domain.ThematiquesAdministratives {
			if slices.Contains(strs, o.Value) {
				broken = append(broken, "thematiques_administratives")
				break
			}
		}
	}
	if filled("precisions_demarche") && !aide {
		broken = append(broken, "precisions_demarche")
	}
	if (str("type_lieu") == "lieu_activite") != filled("structure_id") {
		broken = append(broken, "structure_lieu_activite")
	}
	if (str("type_lieu") == "domicile" || str("type_lieu") == "autre") && !filled("commune") {
		broken = append(broken, "commune_domicile_autre")
	}
	if d, ok := row["duree"].(int); ok && (d < 1 || d > 1440) {
		broken = append(broken, "duree_activite")
	}
	if t, ok := row["type_lieu"].(string); ok && !slices.Contains([]string{"lieu_activite", "domicile", "a_distance", "autre"}, t) {
		broken = append(broken, "enum_activite_type_lieu")
	}
	slices.Sort(broken)
	return broken
}

func genActivity(t *rapid.T) map[string]any {
	row := map[string]any{}
	maybe := func(col string, g *rapid.Generator[string]) {
		if rapid.Bool().Draw(t, col+"?") {
			row[col] = g.Draw(t, col)
		}
	}
	maybe("type_lieu", rapid.SampledFrom([]string{"lieu_activite", "domicile", "a_distance", "autre", "ailleurs"}))
	maybe("structure_id", rapid.SampledFrom([]string{"", "0192a000-0000-7000-8000-000000000001"}))
	maybe("commune", rapid.SampledFrom([]string{"", "  ", "Laval", "Évron"}))
	maybe("precisions_demarche", rapid.SampledFrom([]string{"", " ", "Déclaration de revenus"}))
	if rapid.Bool().Draw(t, "duree?") {
		row["duree"] = rapid.IntRange(-3, 1500).Draw(t, "duree")
	}
	if rapid.Bool().Draw(t, "thematiques?") {
		pool := []string{"email", "sante", domain.AideAuxDemarches, "argent_impots", "logement", "inconnue"}
		themes := rapid.SliceOfN(rapid.SampledFrom(pool), 0, 4).Draw(t, "themes")
		data, _ := json.Marshal(themes)
		row["thematiques"] = string(data)
		if rapid.IntRange(0, 9).Draw(t, "garbled") == 0 {
			row["thematiques"] = rapid.SampledFrom([]string{"email", "{}", `["email",1]`, "[", "null"}).Draw(t, "raw")
		}
	}
	return row
}

// TestRulesAgreeWithOracleOnDeviceAndServer: for any activity row, the
// device's trigger refuses it exactly when the oracle finds a broken
// rule, naming one of them, and the server's evaluation finds exactly
// the oracle's set.
func TestRulesAgreeWithOracleOnDeviceAndServer(t *testing.T) {
	ctx := context.Background()
	dev := relaistest.OpenDevice(t, "oracle", devOpts())
	plain, err := sql.Open("sqlite3", "file::memory:?cache=private")
	if err != nil {
		t.Fatal(err)
	}
	plain.SetMaxOpenConns(1)
	defer plain.Close()
	if err := migrations.Up(ctx, plain, migrations.Domain); err != nil {
		t.Fatal(err)
	}
	schema, err := replica.LoadSchema(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	rapid.Check(t, func(t *rapid.T) {
		row := genActivity(t)
		want := oracle(row)
		id := newID()
		q, args := insertSQL("activite", row, id)
		if len(row) == 0 {
			q, args = "INSERT INTO activite (id) VALUES (?)", []any{id}
		}
		_, err := dev.DB().ExecContext(ctx, q, args...)
		switch {
		case len(want) == 0 && err != nil:
			t.Fatalf("device refused a valid row %v: %v", row, err)
		case len(want) > 0 && err == nil:
			t.Fatalf("device accepted %v, which breaks %v", row, want)
		case err != nil:
			named := false
			for _, r := range want {
				named = named || strings.Contains(err.Error(), "rule "+r+":")
			}
			if !named {
				t.Fatalf("device error %q names none of %v", err, want)
			}
		}
		if _, err := plain.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
		vs, err := domain.Violations(ctx, plain, schema, map[string][]string{"activite": {id}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range vs {
			got = append(got, v.Rule.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("server finds %v in %v, oracle %v", got, row, want)
		}
	})
}
