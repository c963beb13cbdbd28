package server

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestRulesOnACopyJudgeLikeSQLite: rows written on PostgreSQL, checked by
// sqliteRules (copied into SQLite), break exactly the rules the same rows
// break on a SQLite server, including rows the transaction has not
// committed yet.
func TestRulesOnACopyJudgeLikeSQLite(t *testing.T) {
	ctx := context.Background()
	lite, err := store.Open(filepath.Join(t.TempDir(), "r.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	if err := migrations.Up(ctx, lite.W, migrations.Domain); err != nil {
		t.Fatal(err)
	}
	schema, err := replica.LoadSchema(ctx, lite.R)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := OpenPostgres(ctx, pgtest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	rules, err := newSQLiteRules(schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rules.Close()

	id := func(n int) string { return fmt.Sprintf("01928a10-0000-7000-8000-%012d", n) }
	rows := []struct {
		table string
		cols  map[string]any
	}{
		{"activite", map[string]any{"type": "individuel", "date": "2026-03-02", "duree": 45, "type_lieu": "domicile", "commune": "Laval", "thematiques": `["email"]`}},
		{"activite", map[string]any{"type": "individuel", "date": "2026-02-30", "duree": 45, "type_lieu": "domicile", "commune": "Laval"}},
		{"activite", map[string]any{"type": "balade", "date": "2099-01-01", "duree": 5000, "type_lieu": "lieu_activite"}},
		{"activite", map[string]any{"type": "collectif", "thematiques": `["email","email"]`, "materiel": `pas une liste`}},
		{"activite", map[string]any{"type": "individuel", "thematiques": `["aide_aux_demarches_administratives"]`, "type_lieu": "autre"}},
		{"beneficiaire", map[string]any{"anonyme": 0, "prenom": "Camille"}},
		{"beneficiaire", map[string]any{"anonyme": 1, "telephone": "0600000000", "annee_naissance": 1850}},
		{"beneficiaire", map[string]any{"anonyme": 0, "prenom": "Dominique", "nom": "Martin", "annee_naissance": 1961}},
		{"structure", map[string]any{"nom": "France Services", "siret": "123"}},
		{"coordination", map[string]any{"debut": "2026-05-01", "fin": "2026-04-01"}},
	}
	names := func(vs []domain.Violation) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.Table+" "+v.PK+" "+v.Rule.Name)
		}
		slices.Sort(out)
		return out
	}
	named := map[string][]string{}
	for i, r := range rows {
		named[r.table] = append(named[r.table], id(i))
	}
	named["activite"] = append(named["activite"], id(99)) // a row that does not exist breaks nothing

	insert := func(exec func(string, ...any) (sql.Result, error)) {
		for i, r := range rows {
			cols := []string{"id"}
			args := []any{id(i)}
			for c, v := range r.cols {
				cols = append(cols, c)
				args = append(args, v)
			}
			q := fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s)", r.table, strings.Join(cols, ", "),
				strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", "))
			if _, err := exec(q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	insert(func(q string, a ...any) (sql.Result, error) { return lite.W.ExecContext(ctx, q, a...) })
	want, err := domain.Violations(ctx, lite.R, schema, named)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 8 {
		t.Fatalf("only %d violations on SQLite: the rows do not exercise the rules", len(want))
	}

	// Uncommitted, in the transaction that wrote them.
	tx, err := pg.W.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	insert(func(q string, a ...any) (sql.Result, error) { return tx.ExecContext(ctx, q, a...) })
	got, err := domain.Violations(ctx, rules.On(tx), schema, named)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names(got), names(want)) {
		t.Fatalf("violations differ:\nPostgreSQL via a copy %v\nSQLite                %v", names(got), names(want))
	}
	t.Logf("%d violations, the same on both: %v", len(want), names(want))
	// Twice, on the same pooled in-memory databases: nothing is left of
	// the first check's rows.
	if _, err := tx.ExecContext(ctx, "DELETE FROM activite"); err != nil {
		t.Fatal(err)
	}
	got, err = domain.Violations(ctx, rules.On(tx), schema, named)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range got {
		if v.Table == "activite" {
			t.Fatalf("a deleted activity still breaks %s", v.Rule.Name)
		}
	}
	if len(got) == 0 {
		t.Fatal("the other tables' violations are gone")
	}
}
