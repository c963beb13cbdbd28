package demo

import (
	"context"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/internal/relaistest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestSameDemoOnBothEngines: the same seed writes the same département
// into a data directory and into a PostgreSQL store (relais demo
// --store): every cell with its value, version, pull sequence and owner,
// the accounts and the dashboard's devices and conflicts.
func TestSameDemoOnBothEngines(t *testing.T) {
	ctx := context.Background()
	opt := Options{Seed: 7, Activities: 400, Accounts: true, Until: time.Date(2026, time.March, 1, 0, 0, 0, 0, time.UTC)}
	type result struct {
		cells         string
		sum           Summary
		users, others int
	}
	got := map[string]result{}
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		db := e.Open(t, e.New(t))
		sum, err := GenerateStore(ctx, db, opt)
		if err != nil {
			t.Fatalf("demo on %s: %v", e.Name, err)
		}
		var r result
		r.cells, r.sum = relaistest.CellsText(t, db.R, true, true), sum
		if err := db.R.QueryRowContext(ctx, "SELECT COUNT(*) FROM _users").Scan(&r.users); err != nil {
			t.Fatal(err)
		}
		if err := db.R.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM _devices) + (SELECT COUNT(*) FROM _conflicts)").Scan(&r.others); err != nil {
			t.Fatal(err)
		}
		if r.users != len(sum.Accounts) || r.others != sum.Devices+sum.Conflicts || sum.Conflicts == 0 {
			t.Errorf("%s: %d accounts, %d devices and conflicts stored; the summary says %d accounts, %d devices, %d conflicts",
				e.Name, r.users, r.others, len(sum.Accounts), sum.Devices, sum.Conflicts)
		}
		// A second run on the same store is refused, not doubled.
		if _, err := GenerateStore(ctx, db, opt); err == nil {
			t.Errorf("%s: a second demo into the same store was accepted", e.Name)
		}
		got[e.Name] = r
	})
	lite, pg := got["sqlite"], got["postgres"]
	if lite.cells == "" || pg.cells == "" {
		t.Fatal("an engine wrote nothing")
	}
	if lite.cells != pg.cells {
		t.Errorf("the cells differ between SQLite and PostgreSQL: %s", relaistest.FirstDiff(lite.cells, pg.cells))
	}
	if lite.sum.Activites != pg.sum.Activites || lite.sum.Cells != pg.sum.Cells || lite.sum.Conflicts != pg.sum.Conflicts {
		t.Errorf("summaries differ: SQLite %+v, PostgreSQL %+v", lite.sum, pg.sum)
	}
}
