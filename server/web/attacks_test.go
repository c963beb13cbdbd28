package web_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/syncproto"
)

// The dashboard's share of an attack on a running server: each case is
// one failure found by attacking it, replayed against the real server on
// loopback, so that it stays fixed.

// errorCode reads the code of an error body.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// serverCell reads one cell of a row as the server holds it.
func serverCell(t *testing.T, w *world, table, pk, col string) any {
	t.Helper()
	c, ok, err := relaistest.HeldCell(context.Background(), w.srv.DB().R, table, pk, col)
	if err != nil || !ok {
		t.Fatalf("read %s.%s of %s: %v %v", table, col, pk, ok, err)
	}
	v := c.Value
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// Failure 4: a resolution with "other value" was written without the
// scope and rule checks of a pushed change. A coordinator gave a
// beneficiary to herself (and then pulled its name), a conseillère could
// hand her row to a colleague, and duree = -99999 was stored. A
// resolution is a write like any other now: each of these is refused with
// a French message on the page and a clear JSON error, and nothing is
// stored.
func TestAttackResolutionMovesNoRowAndBreaksNoRule(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		w := newWorldOn(t, e)
		// Two administrators' tablets write the owner of Alice's beneficiary
		// at once (the one that wins gives it back to Alice), and two of
		// Alice's tablets the duration of her activity.
		ownerConflict(t, w, "beneficiaire", w.aliceBen, w.bruno.ID, w.alice.ID)
		concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "duree", 60, 90)

		claire, alice := newBrowser(t, w.srv.URL), newBrowser(t, w.srv.URL)
		claire.login("claire@exemple.fr")
		alice.login("alice@exemple.fr")
		owner, ok := findConflict(alice.conflicts(), "beneficiaire", "mediateur_id")
		duree, ok2 := findConflict(alice.conflicts(), "activite", "duree")
		if !ok || !ok2 {
			t.Fatalf("the conflicts on the owner and the duration were not recorded: %+v", alice.conflicts())
		}
		before := storedCells(t, w)

		attacks := []struct {
			name   string
			b      *browser
			id     int64
			value  any
			status int
			code   syncproto.Code
			page   string // what the page says
		}{
			{"the coordinator takes the beneficiary", claire, owner.ID, w.claire.ID, http.StatusForbidden, syncproto.CodeForbidden, "Vous ne pouvez pas résoudre ce conflit"},
			{"the coordinator hands the beneficiary to Bruno", claire, owner.ID, w.bruno.ID, http.StatusForbidden, syncproto.CodeForbidden, "Vous ne pouvez pas résoudre ce conflit"},
			{"the conseillère hands her beneficiary to a colleague", alice, owner.ID, w.bruno.ID, http.StatusForbidden, syncproto.CodeForbiddenScope, "Cette modification est refusée"},
			{"the conseillère leaves her beneficiary without owner", alice, owner.ID, nil, http.StatusForbidden, syncproto.CodeForbiddenScope, "Cette modification est refusée"},
			{"the conseillère breaks the duration rule", alice, duree.ID, -99999, http.StatusBadRequest, syncproto.CodeInvalidRow, "la durée se compte en minutes"},
			{"the coordinator breaks the duration rule", claire, duree.ID, -99999, http.StatusBadRequest, syncproto.CodeInvalidRow, "la durée se compte en minutes"},
		}
		for _, a := range attacks {
			t.Run(a.name, func(t *testing.T) {
				var e errorBody
				if st := a.b.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", a.id), a.b.sessionCSRF(),
					map[string]any{"choice": "other_value", "value": a.value}, &e); st != a.status || e.Error.Code != string(a.code) {
					t.Errorf("JSON: status %d code %q (%s); want %d %s", st, e.Error.Code, e.Error.Message, a.status, a.code)
				}
				// The same through the page's form.
				_, detail := a.b.get(fmt.Sprintf("/conflits/%d", a.id))
				form := url.Values{"_csrf": {csrfIn(detail)}, "choix": {"other_value"}, "valeur": {fmt.Sprint(a.value)}}
				if a.value == nil {
					form.Set("valeur", "")
				}
				if st, body := a.b.post(fmt.Sprintf("/conflits/%d/resolution", a.id), form); st != a.status || !strings.Contains(body, a.page) {
					t.Errorf("form: status %d, page without %q", st, a.page)
				}
				if after := storedCells(t, w); after != before {
					t.Fatalf("a refused resolution changed the server's cells: %v -> %v", before, after)
				}
			})
		}
		if got := serverCell(t, w, "beneficiaire", w.aliceBen, "mediateur_id"); got != w.alice.ID {
			t.Fatalf("the beneficiary now belongs to %v", got)
		}
		for _, c := range alice.conflicts() {
			if c.Resolved {
				t.Errorf("a refused resolution closed conflict %d", c.ID)
			}
		}
		// The coordinator's pull carries no personal data of the beneficiary.
		ct := w.srv.LoginHTTP(t, "claire@exemple.fr", pw, newID())
		if _, wire := pullWire(t, w, ct.AccessToken); strings.Contains(wire, "Jeanne") || strings.Contains(wire, w.aliceName) {
			t.Error("the beneficiary's name reached the coordinator")
		}

		// The controls: what the rules allow still goes through. The owner
		// keeps her own id; the coordinator sets a valid duration.
		var res conflictJSON
		if st := alice.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", owner.ID), alice.sessionCSRF(),
			map[string]any{"choice": "other_value", "value": w.alice.ID}, &res); st != http.StatusOK || !res.Resolved {
			t.Errorf("the owner keeping her beneficiary: status %d", st)
		}
		if st := claire.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", duree.ID), claire.sessionCSRF(),
			map[string]any{"choice": "other_value", "value": 75}, &res); st != http.StatusOK || !res.Resolved {
			t.Errorf("the coordinator setting a valid duration: status %d", st)
		}
		if got := serverCell(t, w, "activite", w.aliceAct, "duree"); fmt.Sprint(got) != "75" {
			t.Errorf("duree after the valid resolution: %v", got)
		}
	})
}

// Failure 5: the dashboard took mediateur_id for the owner in every
// table, the team tables included, so a conseillère resolved a conflict
// on her own coordination row and made her coordinator follow someone
// else (the write committed although the answer was 404). Team tables are
// written by administrators only, on the dashboard as at the wire.
func TestAttackConseillerRewritesNoCoordination(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	// Eve coordinates Alice too; two administrators' tablets edit that
	// coordination at once.
	eve := w.srv.AddUser(t, "eve@exemple.fr", "coordinateur", pw)
	coord := newID()
	if err := w.srv.WriteRow(ctx, "coordination", coord, map[string]any{
		"coordinateur_id": eve.ID, "mediateur_id": w.alice.ID, "debut": "2025-01-01"}); err != nil {
		t.Fatal(err)
	}
	ownerConflict(t, w, "coordination", coord, w.bruno.ID, w.alice.ID)
	// Claire coordinates Alice, but Eve's coordination row does not name
	// her: she does not pull it, and does not see its conflict.
	claire := newBrowser(t, w.srv.URL)
	claire.login("claire@exemple.fr")
	if _, ok := findConflict(claire.conflicts(), "coordination", "mediateur_id"); ok {
		t.Error("Claire sees the conflict on another coordinator's coordination row")
	}

	alice := newBrowser(t, w.srv.URL)
	alice.login("alice@exemple.fr")
	c, ok := findConflict(alice.conflicts(), "coordination", "mediateur_id")
	if !ok {
		t.Fatal("Alice does not see the conflict on her coordination; the attack would prove nothing")
	}
	if c.CanResolve {
		t.Error("the dashboard offers Alice to resolve a conflict on a coordination row")
	}
	before := storedCells(t, w)
	var e errorBody
	if st := alice.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", c.ID), alice.sessionCSRF(),
		map[string]any{"choice": "other_value", "value": w.bruno.ID}, &e); st != http.StatusForbidden || e.Error.Code != string(syncproto.CodeForbidden) {
		t.Errorf("JSON: status %d code %q; want 403 forbidden", st, e.Error.Code)
	}
	_, detail := alice.get(fmt.Sprintf("/conflits/%d", c.ID))
	if st, body := alice.post(fmt.Sprintf("/conflits/%d/resolution", c.ID),
		url.Values{"_csrf": {csrfIn(detail)}, "choix": {"other_value"}, "valeur": {w.bruno.ID}}); st != http.StatusForbidden ||
		!strings.Contains(body, "Vous ne pouvez pas résoudre ce conflit") {
		t.Errorf("form: status %d", st)
	}
	if storedCells(t, w) != before || serverCell(t, w, "coordination", coord, "mediateur_id") != w.alice.ID {
		t.Fatal("a conseillère's resolution rewrote the coordination")
	}
	// An administrator may, and the answer says it is resolved even when
	// the record leaves what they see (it does not here: they see all).
	admin := newBrowser(t, w.srv.URL)
	admin.login("admin@exemple.fr")
	var res conflictJSON
	if st := admin.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", c.ID), admin.sessionCSRF(),
		map[string]any{"choice": "keep_winner"}, &res); st != http.StatusOK || !res.Resolved {
		t.Errorf("the administrator resolving the coordination conflict: status %d", st)
	}
}

// ownerConflict makes two administrators' tablets write mediateur_id of
// a row at once, without syncing in between: the first writes loser, the
// second (later, so it wins) passes through another value to winner, so
// that each tablet's write is a change. The server records the conflict.
func ownerConflict(t *testing.T, w *world, table, pk, loser, winner string) {
	t.Helper()
	ctx := context.Background()
	w.srv.AddUser(t, "admin@exemple.fr", "admin", pw)
	adm1 := w.srv.LoggedInDevice(t, "admin-1", "admin@exemple.fr", pw)
	adm2 := w.srv.LoggedInDevice(t, "admin-2", "admin@exemple.fr", pw)
	syncOK(t, adm1)
	syncOK(t, adm2)
	for _, s := range []struct {
		r *device.Replica
		v string
	}{{adm1, loser}, {adm2, w.carole.ID}, {adm2, winner}} {
		if _, err := s.r.DB().ExecContext(ctx, "UPDATE "+table+" SET mediateur_id = ? WHERE id = ?", s.v, pk); err != nil {
			t.Fatal(err)
		}
	}
	syncOK(t, adm1)
	syncOK(t, adm2)
}

// storedCells summarises the server's cells: any write changes it.
func storedCells(t *testing.T, w *world) [2]int64 {
	t.Helper()
	var s [2]int64
	if err := w.srv.DB().R.QueryRow("SELECT COUNT(*), COALESCE(SUM(seq), 0) FROM _rows").Scan(&s[0], &s[1]); err != nil {
		t.Fatal(err)
	}
	return s
}

// pullWire pulls everything a token may see from cursor 0 and returns
// the cells and the bytes that crossed the wire.
func pullWire(t *testing.T, w *world, token string) ([]syncproto.Change, string) {
	t.Helper()
	var all []syncproto.Change
	var wire strings.Builder
	cursor := int64(0)
	for range 100 {
		status, raw := w.srv.PostJSON(t, "/v1/sync", token, map[string]any{"cursor": cursor, "limit": 200})
		if status != http.StatusOK {
			t.Fatalf("pull: %d %s", status, raw)
		}
		wire.Write(raw)
		resp, err := syncproto.DecodeResponse(raw)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, resp.Changes...)
		cursor = resp.Cursor
		if !resp.More {
			return all, wire.String()
		}
	}
	t.Fatal("pull never ended")
	return nil, ""
}

// Failure 8: a coordinator revoked (and so wiped) a device through
// POST /v1/devices/{id}/revoke before the coordination started, which
// the dashboard refused. Both ask one rule now.
func TestAttackNoRevocationBeforeTheCoordinationStarts(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	eve := w.srv.AddUser(t, "eve@exemple.fr", "coordinateur", pw)
	today := scope.Today(time.Now())
	tomorrow := scope.Today(time.Now().Add(24 * time.Hour))
	// Eve will coordinate Alice from tomorrow, and has coordinated Bruno
	// since today.
	if err := w.srv.WriteRow(ctx, "coordination", newID(), map[string]any{
		"coordinateur_id": eve.ID, "mediateur_id": w.alice.ID, "debut": tomorrow}); err != nil {
		t.Fatal(err)
	}
	if err := w.srv.WriteRow(ctx, "coordination", newID(), map[string]any{
		"coordinateur_id": eve.ID, "mediateur_id": w.bruno.ID, "debut": today}); err != nil {
		t.Fatal(err)
	}
	brunoT := w.srv.LoggedInDevice(t, "bruno", "bruno@exemple.fr", pw)
	syncOK(t, brunoT)
	tok := w.srv.LoginHTTP(t, "eve@exemple.fr", pw, newID()).AccessToken

	st, raw := w.srv.PostJSON(t, "/v1/devices/"+w.aliceA.Node()+"/revoke", tok, map[string]any{})
	if st == http.StatusOK {
		t.Errorf("the API let a coordinator revoke a device the day before the coordination starts: %s", raw)
	}
	eveB := newBrowser(t, w.srv.URL)
	eveB.login("eve@exemple.fr")
	if st := eveB.api("POST", "/v1/dashboard/devices/"+w.aliceA.Node()+"/revoke", eveB.sessionCSRF(), nil, nil); st == http.StatusOK {
		t.Error("the dashboard let a coordinator revoke a device before the coordination starts")
	}
	syncOK(t, w.aliceA) // still enrolled, not wiped

	// The control: from the coordination's first day, both allow it.
	if st, raw := w.srv.PostJSON(t, "/v1/devices/"+brunoT.Node()+"/revoke", tok, map[string]any{}); st != http.StatusOK {
		t.Errorf("revoking a device of a médiateur coordinated since today: %d %s", st, raw)
	}
	if _, err := brunoT.Sync(ctx); syncproto.CodeOf(err) != syncproto.CodeDeviceRevoked {
		t.Errorf("the revoked device's next sync: %v", err)
	}
}

// Failure 7, on the dashboard: a coordinator sees the conflicts of the
// rows their pull delivers, no more. Eve coordinates Alice from today;
// Alice's activity of 20 November is outside, so is its conflict.
func TestAttackDashboardFollowsTheCoordinationDates(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		w := newWorldOn(t, e)
		eve := w.srv.AddUser(t, "eve@exemple.fr", "coordinateur", pw)
		if err := w.srv.WriteRow(context.Background(), "coordination", newID(), map[string]any{
			"coordinateur_id": eve.ID, "mediateur_id": w.alice.ID, "debut": scope.Today(time.Now())}); err != nil {
			t.Fatal(err)
		}
		concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "duree", 60, 90)
		claire, eveB := newBrowser(t, w.srv.URL), newBrowser(t, w.srv.URL)
		claire.login("claire@exemple.fr")
		eveB.login("eve@exemple.fr")
		c, ok := findConflict(claire.conflicts(), "activite", "duree")
		if !ok {
			t.Fatal("Claire, who coordinates Alice since 2025, does not see the conflict; the check below would prove nothing")
		}
		if cs := eveB.conflicts(); len(cs) != 0 {
			t.Errorf("Eve sees conflicts on rows dated before her coordination: %+v", cs)
		}
		if st := eveB.api("GET", fmt.Sprintf("/v1/dashboard/conflicts/%d", c.ID), "", nil, nil); st != http.StatusNotFound {
			t.Errorf("Eve reading the conflict: status %d, want 404", st)
		}
		if st := eveB.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", c.ID), eveB.sessionCSRF(),
			map[string]any{"choice": "other_value", "value": 30}, nil); st != http.StatusNotFound {
			t.Errorf("Eve resolving the conflict: status %d, want 404", st)
		}
		if got := serverCell(t, w, "activite", w.aliceAct, "duree"); fmt.Sprint(got) != "90" {
			t.Errorf("duree is %v", got)
		}
	})
}

// Failure 9: /connexion?suite=/%09/host redirected to "/\t/host" after
// login, which browsers read as //host. The target is parsed now, and
// anything but a path on this site sends the browser to "/".
func TestAttackNoOpenRedirectAfterLogin(t *testing.T) {
	w := newWorld(t)
	for _, c := range []struct{ rawQuery, want string }{
		{"suite=/%09/evil.example", "/"},
		{"suite=/%0D%0A/evil.example", "/"},
		{"suite=%2F%5Cevil.example", "/"},
		{"suite=//evil.example/", "/"},
		{"suite=/%252F/evil.example", "/"},
		{"suite=https://evil.example/", "/"},
		{"suite=/flotte%3Fjours%3D3", "/flotte?jours=3"}, // the control: a page of this site
	} {
		b := newBrowser(t, w.srv.URL)
		_, page := b.get("/connexion?" + c.rawQuery)
		suite := ""
		if m := suiteRe.FindStringSubmatch(page); m != nil {
			suite = html.UnescapeString(m[1])
		}
		b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		// The form as the page wrote it, and the query's value forged
		// straight into the form.
		forged, _ := url.ParseQuery(c.rawQuery)
		for _, next := range []string{suite, forged.Get("suite")} {
			_, page = b.get("/connexion")
			resp, err := b.c.PostForm(w.srv.URL+"/connexion", url.Values{"_csrf": {csrfIn(page)}, "email": {"alice@exemple.fr"},
				"password": {pw}, "suite": {next}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != c.want {
				t.Errorf("suite %q: status %d, redirected to %q; want %q", next, resp.StatusCode, loc, c.want)
			}
		}
	}
}

var suiteRe = regexp.MustCompile(`name="suite" value="([^"]*)"`)

// The dashboard's answers carry personal data: no cache keeps them and
// no browser sniffs their type; a CSRF token is taken from a header or a
// form body, never from a URL (where logs, history and Referer headers
// keep it); the session cookie is Secure, with the __Host- prefix, when
// the browser came over HTTPS, which a client's own X-Forwarded-Proto
// does not prove: only a trusted proxy's does.
func TestAttackDashboardHeadersCSRFAndCookies(t *testing.T) {
	w := newWorld(t)
	concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "duree", 60, 90)
	b := newBrowser(t, w.srv.URL)
	b.login("alice@exemple.fr")
	private := func(what string, h http.Header) {
		t.Helper()
		if h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: Cache-Control %q, X-Content-Type-Options %q; want no-store, nosniff", what, h.Get("Cache-Control"), h.Get("X-Content-Type-Options"))
		}
	}
	for _, p := range []string{"/v1/dashboard/me", "/v1/dashboard/conflicts", "/v1/dashboard/devices", "/v1/dashboard/activities", "/conflits", "/flotte"} {
		resp, err := b.c.Get(w.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		private("GET "+p, resp.Header)
	}
	resp, err := http.Get(w.srv.URL + "/v1/dashboard/conflicts")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	private("a refusal without session", resp.Header)

	// The session's CSRF token in the query string is not a token.
	c, _ := findConflict(b.conflicts(), "activite", "duree")
	tok := b.sessionCSRF()
	if st, _ := b.post(fmt.Sprintf("/conflits/%d/resolution?_csrf=%s", c.ID, url.QueryEscape(tok)), url.Values{"choix": {"restore_loser"}}); st != http.StatusForbidden {
		t.Errorf("a form with its CSRF token in the URL: status %d, want 403", st)
	}
	if st := b.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve?_csrf=%s&X-CSRF-Token=%s", c.ID, url.QueryEscape(tok), url.QueryEscape(tok)), "",
		map[string]any{"choice": "restore_loser"}, nil); st != http.StatusForbidden {
		t.Errorf("the API with the CSRF token in the URL: status %d, want 403", st)
	}
	if c2, _ := findConflict(b.conflicts(), "activite", "duree"); c2.Resolved {
		t.Fatal("a token in the URL resolved the conflict")
	}

	// Cookies: a client saying https by itself gets a plain cookie.
	if ck := loginCookie(t, w.srv.URL, "alice@exemple.fr", "https"); ck == nil || ck.Name != "relais_session" || ck.Secure {
		t.Errorf("an untrusted X-Forwarded-Proto set cookie %+v; want relais_session, not Secure", ck)
	}
	// Behind a trusted proxy that says https: __Host-, Secure, Path=/,
	// no Domain; and that cookie opens the session.
	behind := relaistest.StartServer(t, server.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}})
	behind.AddUser(t, "alice@exemple.fr", "conseiller", pw)
	ck := loginCookie(t, behind.URL, "alice@exemple.fr", "https")
	if ck == nil || ck.Name != "__Host-relais_session" || !ck.Secure || ck.Path != "/" || ck.Domain != "" || !ck.HttpOnly {
		t.Fatalf("behind a trusted proxy saying https, cookie %+v; want __Host-relais_session, Secure, Path=/, no Domain", ck)
	}
	req, _ := http.NewRequest("GET", behind.URL+"/v1/dashboard/me", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the __Host- session cookie behind the proxy: status %d", resp.StatusCode)
	}
	// The same proxy saying http gets a plain cookie.
	if ck := loginCookie(t, behind.URL, "alice@exemple.fr", "http"); ck == nil || ck.Name != "relais_session" || ck.Secure {
		t.Errorf("behind a trusted proxy saying http, cookie %+v", ck)
	}
}

// loginCookie logs in through the form with X-Forwarded-Proto set to
// proto, and returns the session cookie the server set.
func loginCookie(t *testing.T, base, email, proto string) *http.Cookie {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values, cookies []*http.Cookie) *http.Response {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, base+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("X-Forwarded-Proto", proto)
		for _, ck := range cookies {
			req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := do("GET", "/connexion", nil, nil)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp = do("POST", "/connexion", url.Values{"_csrf": {csrfIn(string(page))}, "email": {email}, "password": {pw}}, resp.Cookies())
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login with X-Forwarded-Proto %s: status %d", proto, resp.StatusCode)
	}
	for _, ck := range resp.Cookies() {
		if strings.HasSuffix(ck.Name, "relais_session") {
			return ck
		}
	}
	return nil
}
