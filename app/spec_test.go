package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/relais-numerique/relais/app"
	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

var update = flag.Bool("update", false, "rewrite src/generated/spec.json from package domain")

const specFile = "src/generated/spec.json"

// domainDB is an in-memory database with the domain's tables.
func domainDB(t *testing.T) (*sql.DB, *syncproto.Schema) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file::memory:")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := migrations.Up(ctx, db, migrations.Domain); err != nil {
		t.Fatal(err)
	}
	schema, err := replica.LoadSchema(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	return db, schema
}

// The spec the app is built with is package domain's, as it stands.
func TestSpecFile(t *testing.T) {
	_, schema := domainDB(t)
	spec, err := app.BuildSpec(schema)
	if err != nil {
		t.Fatal(err)
	}
	want, err := spec.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(specFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatalf("%v (go test ./app -run TestSpecFile -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from package domain: run go test ./app -run TestSpecFile -update, then npm run build in app/", specFile)
	}
}

// Every rule of every synced table is in the spec, with its message
// shown next to one of the columns it reads.
func TestRuleFields(t *testing.T) {
	_, schema := domainDB(t)
	spec, err := app.BuildSpec(schema)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for table, tc := range spec.Checks {
		for _, r := range tc.Rules {
			rule, ok := domain.RuleByName(r.Name)
			if !ok || rule.Table != table {
				t.Errorf("spec rule %s on %s is not a domain rule of that table", r.Name, table)
				continue
			}
			if !slices.Contains(rule.Columns(), r.Field) || !slices.Contains(tc.Columns, r.Field) {
				t.Errorf("rule %s shows next to %s, which it does not read", r.Name, r.Field)
			}
			if r.Message != rule.Message {
				t.Errorf("rule %s: message %q, domain says %q", r.Name, r.Message, rule.Message)
			}
			n++
		}
	}
	if n != len(domain.Rules()) {
		t.Errorf("the spec has %d rules, package domain %d", n, len(domain.Rules()))
	}
}

// domain.EnumColumns names exactly the columns whose enum_ rule checks
// them, each with the enum whose values the rule lists.
func TestEnumColumns(t *testing.T) {
	listed := map[string]domain.EnumColumn{}
	for _, c := range domain.EnumColumns {
		listed["enum_"+c.Table+"_"+c.Column] = c
	}
	n := 0
	for _, r := range domain.Rules() {
		if !strings.HasPrefix(r.Name, "enum_") {
			continue
		}
		n++
		c, ok := listed[r.Name]
		if !ok {
			t.Errorf("rule %s checks an enum column missing from domain.EnumColumns", r.Name)
			continue
		}
		e, _ := domain.Lookup(c.Enum)
		for _, v := range e.Values() {
			if !strings.Contains(r.Violated, "'"+v+"'") {
				t.Errorf("rule %s does not list %s's value %s", r.Name, c.Enum, v)
			}
		}
	}
	if n != len(domain.EnumColumns) {
		t.Errorf("%d enum rules, %d enum columns", n, len(domain.EnumColumns))
	}
}

// The app's check of a row not yet written finds exactly the rules the
// server's check (domain.Violations) finds on the same row once written.
func TestCheckQueryAgreesWithServer(t *testing.T) {
	db, schema := domainDB(t)
	spec, err := app.BuildSpec(schema)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		name  string
		table string
		row   map[string]any
		want  []string
	}{
		{"valid home visit", "activite", map[string]any{"type": "individuel", "date": "2026-11-20", "duree": int64(45), "type_lieu": "domicile",
			"commune": "Laval", "thematiques": `["email","aide_aux_demarches_administratives","argent_impots"]`, "materiel": `["tablette"]`}, nil},
		{"administrative theme alone", "activite", map[string]any{"type": "individuel", "duree": int64(30), "type_lieu": "a_distance",
			"thematiques": `["logement"]`}, []string{"thematiques_administratives"}},
		{"home visit with no commune", "activite", map[string]any{"type": "individuel", "duree": int64(30), "type_lieu": "domicile",
			"commune": "  "}, []string{"commune_domicile_autre"}},
		{"zero minutes, far future", "activite", map[string]any{"duree": int64(0), "date": "2062-01-05"},
			[]string{"activite_dans_le_futur", "duree_activite"}},
		{"structure missing", "activite", map[string]any{"type_lieu": "lieu_activite"}, []string{"structure_lieu_activite"}},
		{"unknown type, precision without theme", "activite", map[string]any{"type": "demarche", "precisions_demarche": "CAF"},
			[]string{"enum_activite_type", "precisions_demarche"}},
		{"identified with no name", "beneficiaire", map[string]any{"anonyme": int64(0), "prenom": "Jeanne"}, []string{"beneficiaire_identifie"}},
		{"anonymous with a phone", "beneficiaire", map[string]any{"anonyme": int64(1), "telephone": "0600000000"}, []string{"beneficiaire_anonyme"}},
		{"born in 1850", "beneficiaire", map[string]any{"prenom": "A", "nom": "B", "annee_naissance": int64(1850)}, []string{"annee_naissance"}},
		{"counts over total", "participants_anonymes", map[string]any{"total": int64(3), "genre_feminin": int64(2), "genre_masculin": int64(2)},
			[]string{"participants_anonymes_comptes"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc := spec.Checks[c.table]
			// The app's way: the rule query on bound values.
			args := make([]any, len(tc.Columns))
			for j, col := range tc.Columns {
				args[j] = c.row[col]
			}
			flags := make([]bool, len(tc.Rules))
			dest := make([]any, len(flags))
			for j := range flags {
				dest[j] = &flags[j]
			}
			if err := db.QueryRowContext(ctx, tc.Query, args...).Scan(dest...); err != nil {
				t.Fatal(err)
			}
			var app []string
			for j, f := range flags {
				if f {
					app = append(app, tc.Rules[j].Name)
				}
			}
			slices.Sort(app)
			// The server's way: the row written, then judged.
			id := "01928a10-0000-7000-8000-0000000000" + string(rune('a'+i/10)) + string(rune('0'+i%10))
			cols, marks, vals := []string{"id"}, []string{"?"}, []any{id}
			for k, v := range c.row {
				cols = append(cols, `"`+k+`"`)
				marks = append(marks, "?")
				vals = append(vals, v)
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO "+c.table+" ("+join(cols)+") VALUES ("+join(marks)+")", vals...); err != nil {
				t.Fatal(err)
			}
			vs, err := domain.Violations(ctx, db, schema, map[string][]string{c.table: {id}})
			if err != nil {
				t.Fatal(err)
			}
			var server []string
			for _, v := range vs {
				server = append(server, v.Rule.Name)
			}
			slices.Sort(server)
			if !slices.Equal(app, server) {
				t.Fatalf("the app's check finds %v, the server's %v", app, server)
			}
			if !slices.Equal(app, c.want) {
				t.Fatalf("broken rules %v, want %v", app, c.want)
			}
		})
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}
