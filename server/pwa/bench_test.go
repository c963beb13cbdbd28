package pwa_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
)

// BenchmarkAppOpensOffline measures the time for the app to open with no
// network at all, once installed, on a conseillère's year (300 visits
// with their beneficiaries): from the reload of the page to her list of
// activities drawn. The service worker answers the files, the SDK starts
// its worker, compiles SQLite's wasm and opens the replica in OPFS, the
// list is queried and drawn. The link is down and the browser is told it
// is offline, as in TestAppOfflineDay.
//
//	go test -run '^$' -bench AppOpensOffline -benchtime 20x ./server/pwa
func BenchmarkAppOpensOffline(b *testing.B) {
	tm := newTeam(b)
	g := tm.srv.LoggedInDevice(b, "tablette", "camille@exemple.fr", pw)
	tx, err := g.DB().Begin()
	if err != nil {
		b.Fatal(err)
	}
	day := time.Now().AddDate(-1, 0, 0)
	for i := range 300 {
		ben, act := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
		stmts := [][]any{
			{`INSERT INTO beneficiaire (id, anonyme, prenom, nom, commune) VALUES (?, 0, 'Jeanne', 'Lefebvre', 'Laval')`, ben},
			{`INSERT INTO activite (id, type, date, duree, type_lieu, commune, thematiques, materiel, autonomie)
				VALUES (?, 'individuel', ?, 45, 'domicile', 'Laval', '["email"]', '["tablette"]', 'autonome')`, act, day.AddDate(0, 0, i).Format(time.DateOnly)},
			{`INSERT INTO accompagnement (id, activite_id, beneficiaire_id) VALUES (?, ?, ?)`, uuid.Must(uuid.NewV7()).String(), act, ben},
		}
		for _, s := range stmts {
			if _, err := tx.Exec(s[0].(string), s[1:]...); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if _, err := g.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx := chromium(b, 800, 1000)
	openApp(b, ctx, tm.link.URL())
	submitLogin(b, ctx)
	until(b, ctx, "document.querySelectorAll('#liste-activites li').length === 300", "her year of activities")
	synced(b, ctx)
	offline(b, ctx, tm.link, true)
	var script, sdk, drawn float64
	b.ResetTimer()
	for b.Loop() {
		do(b, ctx, chromedp.Reload())
		until(b, ctx, "document.body.dataset.pret === '1' && document.querySelectorAll('#liste-activites li').length === 300", "the app to open offline")
		// Where the time goes, from the page's own clock (milliseconds
		// since the navigation started).
		marks := js[[]float64](b, ctx, `[performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
			performance.getEntriesByName('relais-ouvert')[0].startTime, performance.getEntriesByName('relais-pret')[0].startTime]`)
		script += marks[0]
		sdk += marks[1] - marks[0]
		drawn += marks[2] - marks[1]
	}
	n := float64(b.N)
	b.ReportMetric(script/n, "ms-page-loaded")
	b.ReportMetric(sdk/n, "ms-sqlite-opfs-open")
	b.ReportMetric(drawn/n, "ms-list-drawn")
}
