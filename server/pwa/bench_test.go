package pwa_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// BenchmarkAppOpensOffline measures the time for the app to open with no
// network at all, once installed: from the reload of the page to her
// list of activities drawn (the service worker answers the files, the
// SDK opens SQLite's wasm and the replica in OPFS, the list is queried).
// The link is down and the browser is told it is offline, as in
// TestAppOfflineDay.
func BenchmarkAppOpensOffline(b *testing.B) {
	tm := newTeam(b)
	ctx := chromium(b, 800, 1000)
	openApp(b, ctx, tm.link.URL())
	submitLogin(b, ctx)
	until(b, ctx, "document.querySelector('h1').textContent === 'Mes activités'", "her activities after login")
	synced(b, ctx)
	offline(b, ctx, tm.link, true)
	b.ResetTimer()
	for b.Loop() {
		do(b, ctx, chromedp.Reload())
		until(b, ctx, "document.body.dataset.pret === '1' && document.querySelector('h1').textContent === 'Mes activités'", "the app to open offline")
	}
}
