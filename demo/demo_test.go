package demo

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"github.com/relais-numerique/relais/internal/relaistest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/store"
)

func openDir(t *testing.T) *store.DB {
	t.Helper()
	db, err := server.OpenDB(context.Background(), filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// digest hashes every synced table and the cell store (values, versions,
// sequence numbers), in key order.
func digest(t *testing.T, db *store.DB) map[string]string {
	t.Helper()
	ctx := context.Background()
	schema, err := replica.LoadSchema(ctx, db.R)
	if err != nil {
		t.Fatal(err)
	}
	queries := map[string]string{}
	for _, name := range schema.TableNames() {
		queries[name] = `SELECT * FROM "` + name + `" ORDER BY id`
	}
	out := map[string]string{}
	for name, q := range queries {
		rows, err := db.R.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		h := sha256.New()
		n := 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				fmt.Fprintf(h, "%T:%v|", v, v)
			}
			n++
		}
		rows.Close()
		out[name] = fmt.Sprintf("%d rows %s", n, hex.EncodeToString(h.Sum(nil))[:16])
	}
	// Every cell held: value, version, sequence number, row's owner.
	cells := sha256.Sum256([]byte(relaistest.CellsText(t, db.R, true, true)))
	out["cells"] = hex.EncodeToString(cells[:8])
	return out
}

func generated(t *testing.T, opt Options, viaApply bool) (*store.DB, Summary) {
	t.Helper()
	db := openDir(t)
	sum, err := generate(context.Background(), db, opt, viaApply)
	if err != nil {
		t.Fatal(err)
	}
	return db, sum
}

// TestDeterministic: the same seed gives the same rows, ids, versions
// and sequence numbers; another seed gives other data.
func TestDeterministic(t *testing.T) {
	opt := Options{Seed: 42, Activities: 1500}
	a, _ := generated(t, opt, false)
	b, _ := generated(t, opt, false)
	da, db := digest(t, a), digest(t, b)
	for name, d := range da {
		if db[name] != d {
			t.Errorf("%s differs between two runs with seed 42: %s vs %s", name, d, db[name])
		}
	}
	opt.Seed = 43
	c, _ := generated(t, opt, false)
	if dc := digest(t, c); dc["activite"] == da["activite"] || dc["beneficiaire"] == da["beneficiaire"] {
		t.Error("seeds 42 and 43 gave the same activities or beneficiaries")
	}
}

// TestBulkWriterEqualsMergeEngine: the bulk writer leaves exactly what
// replica.Apply leaves for the same rows: same cells, versions,
// sequence numbers and materialised rows.
func TestBulkWriterEqualsMergeEngine(t *testing.T) {
	opt := Options{Seed: 7, Activities: 800}
	bulk, _ := generated(t, opt, false)
	merged, _ := generated(t, opt, true)
	db, dm := digest(t, bulk), digest(t, merged)
	if len(db) != len(dm) {
		t.Fatalf("%d tables vs %d", len(db), len(dm))
	}
	for name, d := range dm {
		if db[name] != d {
			t.Errorf("%s: bulk %s, merge engine %s", name, db[name], d)
		}
	}
	var seq int64
	if err := bulk.R.QueryRow("SELECT seq FROM _replica").Scan(&seq); err != nil {
		t.Fatal(err)
	}
	var rows int64
	if err := bulk.R.QueryRow("SELECT COUNT(*) FROM _rows").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if seq != rows {
		t.Fatalf("sequence %d after writing %d rows", seq, rows)
	}
}

func TestRefusesToGenerateTwiceIntoTheSameDirectory(t *testing.T) {
	db := openDir(t)
	opt := Options{Seed: 3, Activities: 200}
	if _, err := Generate(context.Background(), db, opt); err != nil {
		t.Fatal(err)
	}
	before := relaistest.CountCells(t, db.R, nil)
	_, err := Generate(context.Background(), db, opt)
	if err == nil || !strings.Contains(err.Error(), "déjà") {
		t.Fatalf("second run: %v", err)
	}
	after := relaistest.CountCells(t, db.R, nil)
	if after != before {
		t.Fatalf("second run wrote %d cells", after-before)
	}
	if _, err := Generate(context.Background(), db, Options{Departement: "75"}); err == nil || !strings.Contains(err.Error(), "53") {
		t.Fatalf("another département: %v", err)
	}
}

func share(t *testing.T, db *sql.DB, num, den string) float64 {
	t.Helper()
	var n, d float64
	if err := db.QueryRow(num).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(den).Scan(&d); err != nil {
		t.Fatal(err)
	}
	if d == 0 {
		t.Fatalf("no rows for %s", den)
	}
	return n / d
}

// TestDistributions: the generated département looks like one. Bounds
// are wide enough for any seed, narrow enough to catch a broken shape.
func TestDistributions(t *testing.T) {
	const size = 12000
	db, sum := generated(t, Options{Seed: 2026, Activities: size}, false)
	r := db.R
	if sum.Activites < size*9/10 || sum.Activites > size*11/10 {
		t.Errorf("%d activities for a size of %d", sum.Activites, size)
	}
	if sum.Conseillers != 22 {
		t.Errorf("%d conseillers, want 22", sum.Conseillers)
	}
	for _, c := range []struct {
		what     string
		num, den string
		lo, hi   float64
	}{
		{"beneficiaries aged 60 and over", "SELECT COUNT(*) FROM beneficiaire WHERE tranche_age IN ('soixante_soixante_neuf', 'soixante_dix_plus')",
			"SELECT COUNT(*) FROM beneficiaire", 0.50, 0.65},
		{"beneficiaries aged 70 and over", "SELECT COUNT(*) FROM beneficiaire WHERE tranche_age = 'soixante_dix_plus'",
			"SELECT COUNT(*) FROM beneficiaire", 0.28, 0.42},
		{"beneficiaries under 25", "SELECT COUNT(*) FROM beneficiaire WHERE tranche_age IN ('moins_de_douze', 'douze_dix_huit', 'dix_huit_vingt_quatre')",
			"SELECT COUNT(*) FROM beneficiaire", 0.05, 0.14},
		{"retired among 60 and over", "SELECT COUNT(*) FROM beneficiaire WHERE statut_social = 'retraite' AND tranche_age IN ('soixante_soixante_neuf', 'soixante_dix_plus')",
			"SELECT COUNT(*) FROM beneficiaire WHERE tranche_age IN ('soixante_soixante_neuf', 'soixante_dix_plus')", 0.85, 0.97},
		{"women", "SELECT COUNT(*) FROM beneficiaire WHERE genre = 'feminin'", "SELECT COUNT(*) FROM beneficiaire", 0.52, 0.64},
		{"anonymous beneficiaries", "SELECT COUNT(*) FROM beneficiaire WHERE anonyme = 1", "SELECT COUNT(*) FROM beneficiaire", 0.20, 0.30},
		{"home visits among individual activities", "SELECT COUNT(*) FROM activite WHERE type = 'individuel' AND type_lieu = 'domicile'",
			"SELECT COUNT(*) FROM activite WHERE type = 'individuel'", 0.17, 0.30},
		{"workshops among activities", "SELECT COUNT(*) FROM activite WHERE type = 'collectif'", "SELECT COUNT(*) FROM activite", 0.08, 0.22},
		{"administrative help among individual activities", "SELECT COUNT(*) FROM activite WHERE type = 'individuel' AND thematiques LIKE '%aide_aux_demarches_administratives%'",
			"SELECT COUNT(*) FROM activite WHERE type = 'individuel'", 0.38, 0.52},
		{"activities in August (1/12 would be 0.083)", "SELECT COUNT(*) FROM activite WHERE substr(date, 6, 2) = '08'", "SELECT COUNT(*) FROM activite", 0.02, 0.06},
		{"home visits with their appointment", "SELECT COUNT(*) FROM activite a JOIN rendez_vous r ON r.id = a.rendez_vous_id WHERE a.type_lieu = 'domicile' AND r.statut = 'seen'",
			"SELECT COUNT(*) FROM activite WHERE type_lieu = 'domicile'", 1, 1},
		{"individual activities with one beneficiary", "SELECT COUNT(DISTINCT a.id) FROM activite a JOIN accompagnement x ON x.activite_id = a.id WHERE a.type = 'individuel'",
			"SELECT COUNT(*) FROM activite WHERE type = 'individuel'", 1, 1},
	} {
		got := share(t, r, c.num, c.den)
		t.Logf("%s: %.3f", c.what, got)
		if got < c.lo || got > c.hi {
			t.Errorf("%s: %.3f, want between %.2f and %.2f", c.what, got, c.lo, c.hi)
		}
	}
	var from, until string
	r.QueryRow("SELECT MIN(date), MAX(date) FROM activite").Scan(&from, &until)
	if from < "2024-11-01" || from > "2024-11-08" || until < "2026-10-20" || until > "2026-10-31" {
		t.Errorf("activities from %s to %s, want the two years before 2026-11-01", from, until)
	}
	var panda string
	if err := r.QueryRow("SELECT commune || ' ' || code_insee FROM structure WHERE itinerance = 'itinerant'").Scan(&panda); err != nil || panda != "Laval 53130" {
		t.Errorf("the itinerant PANDA stop: %q, %v", panda, err)
	}
	var badInsee int
	r.QueryRow(`SELECT COUNT(*) FROM (SELECT code_insee c FROM structure UNION ALL SELECT commune_code_insee FROM beneficiaire
		UNION ALL SELECT code_insee FROM activite WHERE code_insee IS NOT NULL) WHERE c NOT LIKE '53___'`).Scan(&badInsee)
	if badInsee != 0 {
		t.Errorf("%d INSEE codes outside the Mayenne", badInsee)
	}
	var coordinations, team int
	r.QueryRow("SELECT COUNT(*), COUNT(DISTINCT mediateur_id) FROM coordination").Scan(&coordinations, &team)
	if coordinations != 22 || team != 22 {
		t.Errorf("%d coordinations over %d conseillers", coordinations, team)
	}
	var left int
	r.QueryRow("SELECT COUNT(*) FROM coordination WHERE fin IS NOT NULL").Scan(&left)
	if left != 1 {
		t.Errorf("%d conseillers left the team, want 1", left)
	}

	// Every row keeps the Coop's rules, as a server enforcing them needs.
	schema, err := replica.LoadSchema(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string][]string{}
	for _, name := range schema.TableNames() {
		rows, err := r.Query(`SELECT id FROM "` + name + `"`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			rows.Scan(&id)
			all[name] = append(all[name], id)
		}
		rows.Close()
	}
	vs, err := domain.Violations(context.Background(), r, schema, all)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if i == 5 {
			t.Errorf("... %d violations in all", len(vs))
			break
		}
		t.Errorf("%s %s breaks %s", v.Table, v.PK, v.Rule.Name)
	}
}
