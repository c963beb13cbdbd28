package demo

import (
	"context"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// TestRetentionOnTheDemo: on two years of demo data, the retention job
// anonymises exactly the identified beneficiaries with no write to their
// row or accompaniments in the last year (counted here independently,
// in Go), in as many chunks as it takes, and nothing more on a second run.
func TestRetentionOnTheDemo(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := GenerateDir(ctx, dir, Options{Seed: 11, Activities: 2500, Until: time.Date(2026, time.February, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	srv := relaistest.StartServer(t, server.Config{DataDir: dir})
	r := srv.DB().R
	last := map[string]int64{}
	identified := map[string]bool{}
	rows, err := r.QueryContext(ctx, `SELECT id, anonyme FROM beneficiaire`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var anon int
		rows.Scan(&id, &anon)
		identified[id] = anon == 0
	}
	rows.Close()
	beneficiaryOf := map[string]string{}
	rows, err = r.QueryContext(ctx, `SELECT id, beneficiaire_id FROM accompagnement WHERE beneficiaire_id IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, ben string
		rows.Scan(&id, &ben)
		beneficiaryOf[id] = ben
	}
	rows.Close()
	cells, err := relaistest.Cells(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cells {
		switch {
		case c.Table == "beneficiaire":
			if _, live := identified[c.PK]; live {
				last[c.PK] = max(last[c.PK], int64(c.Version.HLC))
			}
		case c.Table == "accompagnement" && beneficiaryOf[c.PK] != "":
			b := beneficiaryOf[c.PK]
			last[b] = max(last[b], int64(c.Version.HLC))
		}
	}
	now := int64(syncproto.FromTime(srv.Clock().Physical().Time().Add(-server.DefaultRetention)))
	want := 0
	for id, ok := range identified {
		if ok && last[id] < now {
			want++
		}
	}
	if want <= 200 {
		t.Fatalf("only %d beneficiaries to anonymise: the test needs more than one chunk", want)
	}
	got, err := srv.RunRetention(ctx, 0)
	if err != nil || got != want {
		t.Fatalf("retention anonymised %d (%v), want %d", got, err, want)
	}
	if again, err := srv.RunRetention(ctx, 0); err != nil || again != 0 {
		t.Fatalf("second run: %d, %v", again, err)
	}
	var left int
	if err := r.QueryRowContext(ctx, "SELECT COUNT(*) FROM beneficiaire WHERE anonyme = 1 AND (nom IS NOT NULL OR prenom IS NOT NULL OR telephone IS NOT NULL)").Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d anonymised beneficiaries keep personal values (%v)", left, err)
	}
}
