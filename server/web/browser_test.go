package web_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/syncproto"
)

// chromium starts a headless Chromium for one test and returns a tab. The
// browser is Debian's (installed by .ci/run); where it is missing the test
// is skipped, unless RELAIS_REQUIRE_BROWSER is set (CI sets it), so a
// missing browser can never pass silently in CI.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("RELAIS_CHROMIUM")
	if path == "" {
		for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if found, err := exec.LookPath(p); err == nil {
				path = found
				break
			}
		}
	}
	if path == "" {
		if os.Getenv("RELAIS_REQUIRE_BROWSER") != "" {
			t.Fatal("no Chromium found, and RELAIS_REQUIRE_BROWSER is set")
		}
		t.Skip("no Chromium on this machine (apt-get install chromium); set RELAIS_REQUIRE_BROWSER to make this fatal")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		// No traffic beyond loopback: this machine's network is closed.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("lang", "fr-FR"),
	)
	// The deadline only stops a hung browser from hanging CI; nothing
	// asserts on how long a step takes.
	base, cancelBase := context.WithTimeout(context.Background(), 3*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // ends the Chromium process this test started
		cancelBase()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// navigate runs steps that load a new page (a link, a form) and waits for it.
func navigate(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status >= 400 {
		t.Fatalf("page %s answered %d", resp.URL, resp.Status)
	}
}

func text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("read %s: %v", css, err)
	}
	return s
}

func pageText(t *testing.T, ctx context.Context) string { return text(t, ctx, "body") }

func loginInBrowser(t *testing.T, ctx context.Context, base, email string) {
	t.Helper()
	// An unauthenticated visit lands on the login page, which sends the
	// person back where they were going.
	navigate(t, ctx, chromedp.Navigate(base+"/conflits"))
	if h := text(t, ctx, "h1"); h != "Connexion" {
		t.Fatalf("unauthenticated visit shows %q, want the login page", h)
	}
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#email"), email), chromedp.SendKeys(chromedp.CSS("#password"), pw))
	navigate(t, ctx, chromedp.Click(chromedp.CSS("main form button[type=submit]")))
	if h := text(t, ctx, "h1"); h != "Conflits" {
		t.Fatalf("after login the page is %q, want Conflits", h)
	}
}

func logoutInBrowser(t *testing.T, ctx context.Context) {
	t.Helper()
	navigate(t, ctx, chromedp.Click(chromedp.CSS("form.who button")))
	if h := text(t, ctx, "h1"); h != "Connexion" {
		t.Fatalf("after logout the page is %q", h)
	}
}

// The coordinator's day, in a real browser: a conflict made by two real
// tablets is resolved and the resolution reaches the tablets; a silent
// tablet comes back; the CSV export downloads; and a conseiller sees no
// one else's beneficiaries.
func TestDashboardInChromium(t *testing.T) {
	w := newWorld(t)
	ctx := chromium(t)
	base := w.srv.URL

	// Alice's two tablets change the same duration while out of touch.
	concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "duree", 60, 90)
	// And her beneficiary's name: a personal field.
	concurrentEdit(t, w.aliceA, w.aliceB, "beneficiaire", w.aliceBen, "nom", "Lefèvre", "Lefebvre-Martin")
	// Bruno's tablet last called in twelve days ago. The fleet reads the
	// server's record of the last contact; the test writes that record as
	// it would stand after twelve silent days.
	brunoT := w.srv.LoggedInDevice(t, "bruno", "bruno@exemple.fr", pw)
	syncOK(t, brunoT)
	twelveDaysAgo := time.Now().Add(-12 * 24 * time.Hour).UnixMilli()
	if _, err := w.srv.DB().W.Exec("UPDATE _devices SET last_seen_at = ?, last_sync_at = ?, created_at = ? WHERE id = ?",
		twelveDaysAgo, twelveDaysAgo, twelveDaysAgo, brunoT.Node()); err != nil {
		t.Fatal(err)
	}

	loginInBrowser(t, ctx, base, "claire@exemple.fr")

	// --- Conflicts: the list names the field in French; the personal one
	// shows no value.
	list := pageText(t, ctx)
	for _, want := range []string{"Durée (min)", "Nom", "donnée personnelle", "alice@exemple.fr"} {
		if !strings.Contains(list, want) {
			t.Errorf("conflict list lacks %q:\n%s", want, list)
		}
	}
	for _, name := range []string{"Lefèvre", "Lefebvre", "Jeanne"} {
		if strings.Contains(list, name) {
			t.Errorf("the coordinator's conflict list shows the beneficiary's name %q", name)
		}
	}
	navigate(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/conflits/%d"]`, conflictID(t, w, "activite", "duree")))))
	winner, loser := text(t, ctx, "#valeur-gagnante"), text(t, ctx, "#valeur-ecartee")
	if !((winner == "90" && loser == "60") || (winner == "60" && loser == "90")) {
		t.Fatalf("the conflict shows %q won over %q; want 60 and 90", winner, loser)
	}
	// Restore the losing version, with the keyboard-reachable radio.
	do(t, ctx, chromedp.Click(chromedp.CSS("#choix-perdant")))
	navigate(t, ctx, chromedp.Click(chromedp.CSS("main form button[type=submit]")))
	if got := text(t, ctx, "#resolution"); !strings.Contains(got, "Version écartée rétablie") || !strings.Contains(got, "claire@exemple.fr") {
		t.Fatalf("after resolving, the page says %q", got)
	}
	// The resolution is an ordinary write: both tablets get it at their
	// next sync.
	for _, r := range []*replicaT{{"A", w.aliceA}, {"B", w.aliceB}} {
		syncOK(t, r.r)
		var d string
		if err := r.r.DB().QueryRow("SELECT duree FROM activite WHERE id = ?", w.aliceAct).Scan(&d); err != nil {
			t.Fatal(err)
		}
		if d != loser {
			t.Errorf("tablet %s holds duree %s after the resolution; want the restored %s", r.name, d, loser)
		}
	}

	// --- Fleet: Bruno's tablet stands out as silent, then comes back.
	navigate(t, ctx, chromedp.Navigate(base+"/flotte"))
	row := fmt.Sprintf("#appareil-%s", brunoT.Node())
	if cls := attr(t, ctx, row, "class"); !strings.Contains(cls, "silent") {
		t.Fatalf("Bruno's silent tablet is not highlighted (class %q)", cls)
	}
	if got := text(t, ctx, row); !strings.Contains(got, "Silencieux depuis 12 jours") {
		t.Fatalf("Bruno's row says %q", got)
	}
	// It comes back with a visit recorded offline.
	record(t, brunoT, w.bruno.ID, "Louis", "Bernard", "Craon", "53084")
	if rep := syncOK(t, brunoT); rep.Pushed == 0 {
		t.Fatal("Bruno's tablet pushed nothing")
	}
	navigate(t, ctx, chromedp.Reload())
	if cls := attr(t, ctx, row, "class"); strings.Contains(cls, "silent") {
		t.Errorf("Bruno's tablet synced but is still highlighted as silent")
	}
	if got := text(t, ctx, row); !strings.Contains(got, "à l'instant") || strings.Contains(got, "Silencieux") {
		t.Errorf("after its sync Bruno's row says %q", got)
	}
	// Nothing waits on it once its batch was acknowledged.
	if got := text(t, ctx, row+" td:nth-child(5)"); got != "0" {
		t.Errorf("Bruno's tablet shows %q changes waiting after a complete sync", got)
	}
	if strings.Contains(pageText(t, ctx), "carole") {
		t.Errorf("the fleet shows another team's devices")
	}

	// --- Statistics render with their charts.
	navigate(t, ctx, chromedp.Navigate(base+"/statistiques?du=2026-01-01&au=2026-12-31"))
	if n := text(t, ctx, "#kpi-activites"); n != "2" {
		t.Errorf("the coordinator's statistics count %s activities; want Alice's and Bruno's", n)
	}
	if svg := count(t, ctx, "svg.chart"); svg < 5 {
		t.Errorf("statistics page has %d charts", svg)
	}

	// --- Export: download the activities CSV through the browser.
	navigate(t, ctx, chromedp.Navigate(base+"/exports?du=2026-01-01&au=2026-12-31"))
	data := download(t, ctx, "#export-activites-csv")
	if !bytes.HasPrefix(data, []byte("\ufeff")) {
		t.Errorf("the CSV has no byte-order mark; a French spreadsheet would garble the accents")
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\ufeff"))))
	r.Comma = ';'
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("the export is not CSV: %v\n%s", err, data)
	}
	if len(recs) != 3 {
		t.Fatalf("export has %d lines; want a header, Alice's and Bruno's activities:\n%s", len(recs), data)
	}
	head, rec := recs[0], recs[1]
	if rec[1] != "alice@exemple.fr" {
		rec = recs[2]
	}
	want := map[string]string{"Date": "20/11/2026", "Conseiller": "alice@exemple.fr", "Type d'activité": "Accompagnement individuel",
		"Type de lieu": "À domicile", "Commune": "Laval", "Durée (min)": loser, "Bénéficiaires nommés": "1",
		"Thématiques": "E-mail, Aide aux démarches administratives, Argent - Impôts", "Matériel utilisé": "Tablette",
		"Autonomie du bénéficiaire": "Autonome avec guidage en cas de besoin"}
	for i, h := range head {
		if v, ok := want[h]; ok {
			if rec[i] != v {
				t.Errorf("export column %q = %q, want %q", h, rec[i], v)
			}
			delete(want, h)
		}
	}
	if len(want) > 0 {
		t.Errorf("export lacks the columns %v (header %v)", want, head)
	}
	if bytes.Contains(data, []byte("Lefebvre")) || bytes.Contains(data, []byte("Mayenne")) {
		t.Errorf("the coordinator's export carries a name or another team's row:\n%s", data)
	}

	// --- Revoke Alice's second tablet from the fleet page, after the
	// confirmation page has said what will be lost.
	navigate(t, ctx, chromedp.Navigate(base+"/flotte"))
	navigate(t, ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/flotte/%s/revocation"]`, w.aliceB.Node()))))
	if got := pageText(t, ctx); !strings.Contains(got, "y compris ce qu'il n'a pas encore envoyé") {
		t.Errorf("the confirmation page does not warn about unsent data:\n%s", got)
	}
	navigate(t, ctx, chromedp.Click(chromedp.CSS("#confirmer-revocation")))
	if got := text(t, ctx, "#appareil-"+w.aliceB.Node()); !strings.Contains(got, "Révoqué") || !strings.Contains(got, "claire@exemple.fr") {
		t.Errorf("after revocation the tablet's row says %q", got)
	}
	if _, err := w.aliceB.Sync(context.Background()); syncproto.CodeOf(err) != syncproto.CodeDeviceRevoked {
		t.Errorf("the revoked tablet's next sync: %v; want device_revoked", err)
	}
	if _, err := w.aliceA.Sync(context.Background()); err != nil {
		t.Errorf("Alice's other tablet stopped syncing: %v", err)
	}
	logoutInBrowser(t, ctx)

	// --- A conseiller sees their own beneficiaries, no one else's.
	loginInBrowser(t, ctx, base, "bruno@exemple.fr")
	for _, p := range []string{"/conflits?etat=tous", "/flotte", "/statistiques?du=2026-01-01&au=2026-12-31"} {
		navigate(t, ctx, chromedp.Navigate(base+p))
		body := pageText(t, ctx)
		for _, other := range []string{"Lefebvre", "Lefèvre", "Jeanne", "Marchand", "Laval", "alice@exemple.fr"} {
			if strings.Contains(body, other) {
				t.Errorf("Bruno's page %s shows %q, from Alice's records", p, other)
			}
		}
	}
	navigate(t, ctx, chromedp.Navigate(base+"/exports?du=2026-01-01&au=2026-12-31"))
	if data := download(t, ctx, "#export-activites-csv"); bytes.Contains(data, []byte("Laval")) || bytes.Contains(data, []byte("Lefebvre")) ||
		!bytes.Contains(data, []byte("Craon")) || !bytes.Contains(data, []byte("Louis Bernard")) {
		t.Errorf("Bruno's export should hold his own visit (with his beneficiary's name) and nothing of Alice's:\n%s", data)
	}
	logoutInBrowser(t, ctx)

	// Alice, who owns the beneficiary, sees the name conflict's values
	// and resolves it herself.
	loginInBrowser(t, ctx, base, "alice@exemple.fr")
	navigate(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/conflits/%d", base, conflictID(t, w, "beneficiaire", "nom"))))
	if got := text(t, ctx, "#valeur-gagnante") + " / " + text(t, ctx, "#valeur-ecartee"); !strings.Contains(got, "Lefèvre") || !strings.Contains(got, "Lefebvre-Martin") {
		t.Fatalf("the owner does not see the values: %q", got)
	}
	do(t, ctx, chromedp.Click(chromedp.CSS("#choix-autre")), chromedp.SendKeys(chromedp.CSS("#valeur"), "Lefebvre"))
	navigate(t, ctx, chromedp.Click(chromedp.CSS("main form button[type=submit]")))
	if got := text(t, ctx, "#resolution"); !strings.Contains(got, "Autre valeur saisie") {
		t.Fatalf("after resolving the name, the page says %q", got)
	}
	syncOK(t, w.aliceA)
	var nom string
	if err := w.aliceA.DB().QueryRow("SELECT nom FROM beneficiaire WHERE id = ?", w.aliceBen).Scan(&nom); err != nil || nom != "Lefebvre" {
		t.Errorf("Alice's tablet holds nom %q (%v) after her resolution", nom, err)
	}
}

type replicaT struct {
	name string
	r    *device.Replica
}

// conflictID reads the id of the conflict recorded on table.col.
func conflictID(t *testing.T, w *world, table, col string) int64 {
	t.Helper()
	var id int64
	if err := w.srv.DB().R.QueryRow("SELECT id FROM _conflicts WHERE tbl = ? AND col = ? ORDER BY id DESC LIMIT 1", table, col).Scan(&id); err != nil {
		t.Fatalf("no conflict recorded on %s.%s: %v", table, col, err)
	}
	return id
}

func attr(t *testing.T, ctx context.Context, css, name string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(css), name))
	if err != nil {
		t.Fatalf("attribute %s of %s: %v", name, css, err)
	}
	return v.Value
}

func count(t *testing.T, ctx context.Context, css string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", css)))
	if err != nil {
		t.Fatalf("count %s: %v", css, err)
	}
	return n
}

// download clicks a download link and returns the file the browser saved.
func download(t *testing.T, ctx context.Context, link string) []byte {
	t.Helper()
	dir := t.TempDir()
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	do(t, ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			events := true
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &events})
			return err
		}),
		chromedp.Click(chromedp.CSS(link)),
	)
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download: %v", err)
		}
		switch ev.State {
		case cdpbrowser.DownloadProgressStateCompleted:
			data, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				t.Fatalf("read the downloaded file: %v", err)
			}
			return data
		case cdpbrowser.DownloadProgressStateCanceled:
			t.Fatal("the browser cancelled the download")
		}
	}
	t.Fatal("the download never completed")
	return nil
}
