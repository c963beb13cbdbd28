package web_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server/auth"
)

// Conflicts as a person reads them, in Chromium: the devices and the
// writers named, a conflict between two devices of one conseillère said
// to be so, no doubled parentheses, and a "conflict" whose two sides hold
// the same value not shown at all. An unknown address answers a French
// page to a browser, and JSON to a program.
func TestConflictsReadInChromium(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	acc := &auth.Accounts{W: w.srv.DB().W, R: w.srv.DB().R}
	if err := acc.SetName(ctx, "alice@exemple.fr", "Alice Durand"); err != nil {
		t.Fatal(err)
	}
	for dev, name := range map[string]string{w.aliceA.Node(): "Tablette", w.aliceB.Node(): "Téléphone"} {
		if _, err := w.srv.DB().W.Exec("UPDATE _devices SET name = ? WHERE id = ?", name, dev); err != nil {
			t.Fatal(err)
		}
	}
	concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "duree", 50, 70)
	id := conflictID(t, w, "activite", "duree")
	// Two sides with one value, as when an erasure met the retention job.
	if _, err := w.srv.DB().W.Exec(`INSERT INTO _conflicts (tbl, pk, col, winner_val, winner_hlc, winner_node, loser_val, loser_hlc, loser_node, detected_at)
		VALUES ('activite', ?, 'commune', NULL, 10, ?, NULL, 9, ?, 1)`, w.aliceAct, w.aliceA.Node(), w.aliceB.Node()); err != nil {
		t.Fatal(err)
	}
	if _, err := w.srv.DB().W.Exec(`INSERT INTO _conflicts (tbl, pk, col, winner_val, winner_hlc, winner_node, loser_val, loser_hlc, loser_node, detected_at)
		VALUES ('activite', ?, 'autonomie', 1, 10, ?, '1', 9, ?, 1)`, w.aliceAct, w.aliceA.Node(), w.aliceB.Node()); err != nil {
		t.Fatal(err)
	}

	b := chromium(t)
	loginInBrowser(t, b, w.srv.URL, "claire@exemple.fr")
	if n := count(t, b, "table.cards tbody tr"); n != 1 {
		t.Errorf("Conflits lists %d conflicts, want 1 (same-value ones are no conflict):\n%s", n, pageText(t, b))
	}
	list := pageText(t, b)
	for _, want := range []string{"suivi par Alice Durand", "deux appareils de la même personne", "Alice Durand (Tablette)", "Alice Durand (Téléphone)", "Le serveur Relais"} {
		if !strings.Contains(list, want) {
			t.Errorf("Conflits lacks %q:\n%s", want, list)
		}
	}
	if !regexp.MustCompile(`\d\d/\d\d/\d{4} à \d\d:\d\d CES?T`).MatchString(list) {
		t.Errorf("times are not shown in Paris time with the zone:\n%s", list)
	}
	if strings.Contains(list, "suivi par alice@") {
		t.Errorf("Conflits names people by e-mail:\n%s", list)
	}
	navigate(t, b, chromedp.Navigate(w.srv.URL+"/conflits/"+itoa(id)))
	page := pageText(t, b)
	for _, want := range []string{"même personne, sur deux de ses appareils", "« Tablette »", "« Téléphone »", "Garder la version retenue : "} {
		if !strings.Contains(page, want) {
			t.Errorf("the conflict page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "((") {
		t.Errorf("doubled parentheses:\n%s", page)
	}

	// The fleet names the devices and their owner.
	navigate(t, b, chromedp.Navigate(w.srv.URL+"/flotte"))
	if n := count(t, b, ".device-name"); n != 2 || !strings.Contains(pageText(t, b), "Alice Durand") {
		t.Errorf("Flotte shows %d device names:\n%s", n, pageText(t, b))
	}

	// An unknown address: a French page in the browser, JSON for programs.
	resp, err := chromedp.RunResponse(b, chromedp.Navigate(w.srv.URL+"/statistique"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusNotFound || !strings.Contains(pageText(t, b), "Cette page n'existe pas") {
		t.Errorf("unknown page: %d %q", resp.Status, pageText(t, b))
	}
	st, raw := getRaw(t, w.srv, "/v1/nope")
	if st != http.StatusNotFound || relaistest.ErrorCode(raw) != "not_found" {
		t.Errorf("unknown API path: %d %s", st, raw)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// getRaw makes a GET as a program would (no HTML in Accept).
func getRaw(t *testing.T, srv *relaistest.Server, path string) (int, []byte) {
	t.Helper()
	res, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, raw
}
