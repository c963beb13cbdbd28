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
	rows, err := r.QueryContext(ctx, `SELECT b.id, b.anonyme, c.hlc FROM beneficiaire b JOIN _cells c ON c.tbl = 'beneficiaire' AND c.pk = b.id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var anon int
		var hlc int64
		rows.Scan(&id, &anon, &hlc)
		identified[id] = anon == 0
		last[id] = max(last[id], hlc)
	}
	rows.Close()
	rows, err = r.QueryContext(ctx, `SELECT a.beneficiaire_id, c.hlc FROM accompagnement a JOIN _cells c ON c.tbl = 'accompagnement' AND c.pk = a.id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var hlc int64
		rows.Scan(&id, &hlc)
		last[id] = max(last[id], hlc)
	}
	rows.Close()
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
