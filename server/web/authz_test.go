package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

// Every page and endpoint refuses a visitor with no session, or with a
// forged session cookie.
func TestEveryEndpointNeedsASession(t *testing.T) {
	w := newWorld(t)
	pages := []string{"/", "/conflits", "/conflits/1", "/flotte", "/statistiques", "/exports", "/exports/activites.csv",
		"/exports/statistiques.xlsx"}
	apis := []string{"GET /v1/dashboard/me", "GET /v1/dashboard/conflicts", "GET /v1/dashboard/conflicts/1",
		"POST /v1/dashboard/conflicts/1/resolve", "GET /v1/dashboard/devices", "POST /v1/dashboard/devices/" + w.aliceA.Node() + "/revoke",
		"GET /v1/dashboard/stats", "GET /v1/dashboard/activities"}
	for _, cookie := range []string{"", "forged-session-token-that-the-server-never-issued"} {
		b := newBrowser(t, w.srv.URL)
		b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		if cookie != "" {
			u, _ := url.Parse(w.srv.URL)
			b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "relais_session", Value: cookie}})
		}
		for _, p := range pages {
			resp, err := b.c.Get(w.srv.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/connexion") {
				t.Errorf("GET %s with cookie %q: status %d, location %q; want a redirect to the login page",
					p, cookie, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		for _, form := range []string{"/conflits/1/resolution", "/flotte/" + w.aliceA.Node() + "/revocation", "/deconnexion"} {
			if st, _ := b.post(form, url.Values{"_csrf": {"whatever"}, "choix": {"keep_winner"}}); st != http.StatusUnauthorized {
				t.Errorf("POST %s with cookie %q: status %d, want 401", form, cookie, st)
			}
		}
		for _, a := range apis {
			method, path, _ := strings.Cut(a, " ")
			if st := b.api(method, path, "whatever", map[string]any{"choice": "keep_winner"}, nil); st != http.StatusUnauthorized {
				t.Errorf("%s with cookie %q: status %d, want 401", a, cookie, st)
			}
		}
	}
	// The device was not revoked by any of this.
	syncOK(t, w.aliceA)
}

func TestLoginSessionCookieAndCSRF(t *testing.T) {
	w := newWorld(t)
	concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "duree", 60, 90)

	// A login form posted without its CSRF token (login CSRF) is refused.
	b := newBrowser(t, w.srv.URL)
	if st, _ := b.post("/connexion", url.Values{"email": {"claire@exemple.fr"}, "password": {pw}}); st != http.StatusForbidden {
		t.Fatalf("login without CSRF token: status %d, want 403", st)
	}
	// A wrong password says so without saying whether the account exists.
	_, page := b.get("/connexion")
	st, body := b.post("/connexion", url.Values{"_csrf": {csrfIn(page)}, "email": {"claire@exemple.fr"}, "password": {"mauvais-mot"}})
	if st != http.StatusUnauthorized || !strings.Contains(body, "Adresse e-mail ou mot de passe incorrect") {
		t.Fatalf("wrong password: status %d", st)
	}

	// The session cookie: HttpOnly, SameSite=Lax, not Secure over plain HTTP.
	_, page = b.get("/connexion?suite=//evil.example/")
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := b.c.PostForm(w.srv.URL+"/connexion", url.Values{"_csrf": {csrfIn(page)}, "email": {"claire@exemple.fr"},
		"password": {pw}, "suite": {"//evil.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Errorf("after login, redirected to %q; an off-site 'suite' must be ignored", loc)
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "relais_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure on http", session)
	}
	b.c.CheckRedirect = nil

	// Pages forbid scripts, other origins and framing (the revoke button
	// must not be clickable from inside another site's frame).
	pr, err := b.c.Get(w.srv.URL + "/flotte")
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if csp := pr.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("page CSP %q", csp)
	}

	cs := b.conflicts()
	c, ok := findConflict(cs, "activite", "duree")
	if !ok {
		t.Fatalf("the coordinator does not see the conflict on the duration: %+v", cs)
	}
	path := fmt.Sprintf("/conflits/%d/resolution", c.ID)
	// Forms without the session's CSRF token, or with another one, are refused.
	for _, tok := range []string{"", "not-the-session-token"} {
		if st, _ := b.post(path, url.Values{"_csrf": {tok}, "choix": {"restore_loser"}}); st != http.StatusForbidden {
			t.Errorf("resolution with CSRF token %q: status %d, want 403", tok, st)
		}
	}
	if st := b.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", c.ID), "", map[string]any{"choice": "restore_loser"}, nil); st != http.StatusForbidden {
		t.Errorf("API resolution without X-CSRF-Token: status %d, want 403", st)
	}
	if st, _ := b.post("/deconnexion", url.Values{}); st != http.StatusForbidden {
		t.Errorf("logout without CSRF token: status %d, want 403", st)
	}
	if c2, _ := findConflict(b.conflicts(), "activite", "duree"); c2.Resolved {
		t.Fatal("a refused form resolved the conflict anyway")
	}
	// With the token, the resolution goes through.
	_, detail := b.get(fmt.Sprintf("/conflits/%d", c.ID))
	if st, body := b.post(path, url.Values{"_csrf": {csrfIn(detail)}, "choix": {"restore_loser"}}); st != http.StatusOK || !strings.Contains(body, "Le conflit est résolu") {
		t.Fatalf("resolution with the token: status %d", st)
	}
	// Logging out ends the session on the server: the old cookie is dead.
	_, page = b.get("/conflits")
	if st, body := b.post("/deconnexion", url.Values{"_csrf": {csrfIn(page)}}); st != http.StatusOK || !strings.Contains(body, `action="/connexion"`) {
		t.Fatalf("logout: status %d", st)
	}
	u, _ := url.Parse(w.srv.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "relais_session", Value: session.Value}})
	if st := b.api("GET", "/v1/dashboard/me", "", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("the cookie of a logged-out session still works: %d", st)
	}
}

// What each person sees of conflicts, devices, statistics and exports.
func TestVisibility(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		w := newWorldOn(t, e)
		caroleT2 := w.srv.LoggedInDevice(t, "carole-2", "carole@exemple.fr", pw)
		syncOK(t, caroleT2)
		concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "duree", 60, 90)
		concurrentEdit(t, w.aliceA, w.aliceB, "beneficiaire", w.aliceBen, "nom", "Lefèvre", "Lefebvre-Martin")
		concurrentEdit(t, w.caroleT, caroleT2, "activite", w.caroleAct, "duree", 30, 120)
		// Notes on an activity are the conseillère's own.
		concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "notes", "Rappeler pour la CAF", "Revoir mardi, dossier CAF")

		claire, alice, bruno, denis := newBrowser(t, w.srv.URL), newBrowser(t, w.srv.URL), newBrowser(t, w.srv.URL), newBrowser(t, w.srv.URL)
		claire.login("claire@exemple.fr")
		alice.login("alice@exemple.fr")
		bruno.login("bruno@exemple.fr")
		denis.login("denis@exemple.fr")

		// The coordinator sees the team's conflicts; a personal field's values
		// are withheld and only its owner may resolve it.
		cc := claire.conflicts()
		duree, ok1 := findConflict(cc, "activite", "duree")
		nom, ok2 := findConflict(cc, "beneficiaire", "nom")
		notes, ok3 := findConflict(cc, "activite", "notes")
		if !ok1 || !ok2 || !ok3 || len(cc) != 3 {
			t.Fatalf("coordinator sees %d conflicts (%+v); want Alice's three", len(cc), cc)
		}
		if !notes.Hidden || notes.Winner.Value != nil || notes.CanResolve {
			t.Errorf("coordinator's view of the notes conflict shows the notes: %+v", notes)
		}
		if duree.Hidden || duree.Winner.Value == nil || !duree.CanResolve {
			t.Errorf("coordinator's view of the duration conflict: %+v", duree)
		}
		if !nom.Personal || !nom.Hidden || nom.Winner.Value != nil || nom.Loser.Value != nil || nom.CanResolve {
			t.Errorf("coordinator's view of the name conflict shows personal data: %+v", nom)
		}
		csrf := claire.sessionCSRF()
		if st := claire.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", nom.ID), csrf, map[string]any{"choice": "restore_loser"}, nil); st != http.StatusForbidden {
			t.Errorf("coordinator resolving a personal field: status %d, want 403", st)
		}
		for _, p := range []string{"/conflits?etat=tous", fmt.Sprintf("/conflits/%d", nom.ID)} {
			_, body := claire.get(p)
			for _, name := range []string{"Lefèvre", "Lefebvre", "Jeanne", "Marchand"} {
				if strings.Contains(body, name) {
					t.Errorf("coordinator's page %s shows the beneficiary's name %q", p, name)
				}
			}
		}

		// The activity list: the team's activities, without notes.
		activities := func(b *browser) (ids map[string]string) {
			var out struct {
				Activities []struct {
					ID    string `json:"id"`
					Notes string `json:"notes"`
				} `json:"activities"`
			}
			if st := b.api("GET", "/v1/dashboard/activities?du=2026-01-01&au=2026-12-31", "", nil, &out); st != http.StatusOK {
				t.Fatalf("GET activities: %d", st)
			}
			ids = map[string]string{}
			for _, a := range out.Activities {
				ids[a.ID] = a.Notes
			}
			return ids
		}
		if acts := activities(claire); len(acts) != 1 || acts[w.aliceAct] != "" {
			t.Errorf("coordinator's activity list: %v; want Alice's activity without its notes", acts)
		}
		if acts := activities(alice); len(acts) != 1 || !strings.Contains(acts[w.aliceAct], "CAF") {
			t.Errorf("Alice's activity list: %v; want her activity with its notes", acts)
		}
		if acts := activities(bruno); len(acts) != 0 {
			t.Errorf("Bruno's activity list: %v", acts)
		}
		if acts := activities(denis); len(acts) != 1 || acts[w.caroleAct] != "" {
			t.Errorf("Denis's activity list: %v", acts)
		}
		_, claireCSVNotes := claire.get("/exports/activites.csv?du=2026-01-01&au=2026-12-31")
		if strings.Contains(claireCSVNotes, "CAF") {
			t.Errorf("coordinator's export carries Alice's notes")
		}

		// Alice, the owner, sees the values and resolves the personal field.
		an, ok := findConflict(alice.conflicts(), "beneficiaire", "nom")
		if !ok || an.Hidden || an.Winner.Value == nil || !an.CanResolve {
			t.Fatalf("owner's view of the name conflict: %+v", an)
		}
		var resolved conflictJSON
		if st := alice.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", an.ID), alice.sessionCSRF(),
			map[string]any{"choice": "other_value", "value": "Lefebvre"}, &resolved); st != http.StatusOK || !resolved.Resolved {
			t.Fatalf("owner resolving the name: status %d, %+v", st, resolved)
		}

		// Denis (another team) and Bruno (same team, another conseiller) see
		// none of Alice's conflicts, and are told they do not exist.
		carolesConflict, ok := findConflict(denis.conflicts(), "activite", "duree")
		if !ok || len(denis.conflicts()) != 1 {
			t.Fatalf("Denis should see exactly Carole's conflict")
		}
		for name, b := range map[string]*browser{"denis": denis, "bruno": bruno} {
			for _, c := range b.conflicts() {
				if c.PK == w.aliceAct || c.PK == w.aliceBen {
					t.Errorf("%s sees Alice's conflict %+v", name, c)
				}
			}
			for _, id := range []int64{duree.ID, nom.ID} {
				if st := b.api("GET", fmt.Sprintf("/v1/dashboard/conflicts/%d", id), "", nil, nil); st != http.StatusNotFound {
					t.Errorf("%s reading Alice's conflict %d: status %d, want 404", name, id, st)
				}
				if st, _ := b.get(fmt.Sprintf("/conflits/%d", id)); st != http.StatusNotFound {
					t.Errorf("%s opening Alice's conflict page %d: status %d, want 404", name, id, st)
				}
				if st := b.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", id), b.sessionCSRF(),
					map[string]any{"choice": "keep_winner"}, nil); st != http.StatusNotFound {
					t.Errorf("%s resolving Alice's conflict %d: status %d, want 404", name, id, st)
				}
			}
		}
		for _, c := range cc {
			if c.ID == carolesConflict.ID {
				t.Errorf("Claire sees Carole's conflict")
			}
		}
		// Nobody of Claire's team reaches the other team's conflict.
		for name, b := range map[string]*browser{"claire": claire, "alice": alice, "bruno": bruno} {
			if st := b.api("GET", fmt.Sprintf("/v1/dashboard/conflicts/%d", carolesConflict.ID), "", nil, nil); st != http.StatusNotFound {
				t.Errorf("%s reading Carole's conflict: status %d, want 404", name, st)
			}
			if st := b.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", carolesConflict.ID), b.sessionCSRF(),
				map[string]any{"choice": "keep_winner"}, nil); st != http.StatusNotFound {
				t.Errorf("%s resolving Carole's conflict: status %d, want 404", name, st)
			}
			if st := b.api("POST", "/v1/dashboard/devices/"+w.caroleT.Node()+"/revoke", b.sessionCSRF(), nil, nil); st != http.StatusNotFound {
				t.Errorf("%s revoking Carole's tablet: status %d, want 404", name, st)
			}
		}
		syncOK(t, w.caroleT) // still enrolled

		// Devices: the team's for the coordinator, one's own for a conseiller.
		devices := func(b *browser) map[string]bool {
			var out struct {
				Devices []struct {
					ID string `json:"id"`
				} `json:"devices"`
			}
			if st := b.api("GET", "/v1/dashboard/devices", "", nil, &out); st != http.StatusOK {
				t.Fatalf("GET devices: %d", st)
			}
			m := map[string]bool{}
			for _, d := range out.Devices {
				m[d.ID] = true
			}
			return m
		}
		if d := devices(claire); !d[w.aliceA.Node()] || !d[w.aliceB.Node()] || d[w.caroleT.Node()] || len(d) != 2 {
			t.Errorf("coordinator's fleet: %v", d)
		}
		if d := devices(bruno); len(d) != 0 {
			t.Errorf("Bruno's fleet shows others' devices: %v", d)
		}
		if d := devices(alice); len(d) != 2 {
			t.Errorf("Alice's fleet: %v", d)
		}
		for name, b := range map[string]*browser{"denis": denis, "bruno": bruno} {
			if st := b.api("POST", "/v1/dashboard/devices/"+w.aliceA.Node()+"/revoke", b.sessionCSRF(), nil, nil); st != http.StatusNotFound {
				t.Errorf("%s revoking Alice's tablet through the API: status %d, want 404", name, st)
			}
			_, page := b.get("/flotte")
			if st, _ := b.post("/flotte/"+w.aliceA.Node()+"/revocation", url.Values{"_csrf": {csrfIn(page)}}); st != http.StatusNotFound {
				t.Errorf("%s revoking Alice's tablet with the form: status %d, want 404", name, st)
			}
		}
		syncOK(t, w.aliceA) // still enrolled

		// Statistics: Claire counts her team's activity, Bruno only his own
		// (none), Denis only Carole's.
		stats := func(b *browser) (acts int, communes string) {
			var st struct {
				Activities int `json:"activites"`
				ByCommune  []struct {
					Label string `json:"label"`
				} `json:"par_commune"`
			}
			if code := b.api("GET", "/v1/dashboard/stats?du=2026-01-01&au=2026-12-31", "", nil, &st); code != http.StatusOK {
				t.Fatalf("GET stats: %d", code)
			}
			for _, c := range st.ByCommune {
				communes += c.Label + ";"
			}
			return st.Activities, communes
		}
		if n, cm := stats(claire); n != 1 || cm != "Laval;" {
			t.Errorf("coordinator's statistics: %d activities in %q; want Alice's one in Laval", n, cm)
		}
		if n, _ := stats(bruno); n != 0 {
			t.Errorf("Bruno's statistics count %d activities of others", n)
		}
		if n, cm := stats(denis); n != 1 || cm != "Mayenne;" {
			t.Errorf("Denis's statistics: %d in %q", n, cm)
		}

		// Exports: the coordinator's has no names; Alice's own has hers;
		// nobody's has another team's rows.
		_, claireCSV := claire.get("/exports/activites.csv?du=2026-01-01&au=2026-12-31")
		_, aliceCSV := alice.get("/exports/activites.csv?du=2026-01-01&au=2026-12-31")
		_, brunoCSV := bruno.get("/exports/activites.csv?du=2026-01-01&au=2026-12-31")
		if !strings.Contains(claireCSV, "Laval") || strings.Contains(claireCSV, "Mayenne") || strings.Contains(claireCSV, "Lefebvre") ||
			strings.Contains(claireCSV, "Bénéficiaires (noms)") {
			t.Errorf("coordinator's export:\n%s", claireCSV)
		}
		if !strings.Contains(aliceCSV, "Jeanne Lefebvre") {
			t.Errorf("Alice's own export lacks her beneficiary's name:\n%s", aliceCSV)
		}
		if strings.Contains(brunoCSV, "Laval") || strings.Contains(brunoCSV, "Lefebvre") {
			t.Errorf("Bruno's export has Alice's rows:\n%s", brunoCSV)
		}
	})
}

// A tool may call the API with a device's bearer access token; a bad one
// is refused.
func TestAPIWithBearerToken(t *testing.T) {
	w := newWorld(t)
	var token string
	if err := w.aliceA.DB().QueryRowContext(context.Background(), "SELECT access_token FROM _device WHERE id = 1").Scan(&token); err != nil {
		t.Fatal(err)
	}
	call := func(tok string) int {
		req, _ := http.NewRequest("GET", w.srv.URL+"/v1/dashboard/devices", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := call(token); st != http.StatusOK {
		t.Errorf("valid bearer token: status %d", st)
	}
	if st := call(token[:len(token)-4] + "AAAA"); st != http.StatusUnauthorized {
		t.Errorf("tampered bearer token: status %d, want 401", st)
	}
}

// A session ends after two idle hours, and at once when its account is
// disabled.
func TestSessionExpiryAndDisabledAccount(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	srv := relaistest.StartServer(t, server.Config{Now: clock.Now})
	srv.AddUser(t, "claire@exemple.fr", "coordinateur", pw)
	srv.AddUser(t, "alice@exemple.fr", "conseiller", pw)

	b := newBrowser(t, srv.URL)
	b.login("claire@exemple.fr")
	clock.advance(90 * time.Minute)
	if st := b.api("GET", "/v1/dashboard/me", "", nil, nil); st != http.StatusOK {
		t.Fatalf("session refused after 90 quiet minutes: %d", st)
	}
	clock.advance(2*time.Hour + time.Minute)
	if st := b.api("GET", "/v1/dashboard/me", "", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("session still valid after two idle hours: %d", st)
	}

	a := newBrowser(t, srv.URL)
	a.login("alice@exemple.fr")
	accounts := &auth.Accounts{W: srv.DB().W, R: srv.DB().R}
	if _, err := accounts.SetDisabled(context.Background(), "alice@exemple.fr", true, clock.Now()); err != nil {
		t.Fatal(err)
	}
	if st := a.api("GET", "/v1/dashboard/me", "", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("a disabled account's session still works: %d", st)
	}
	_, page := a.get("/connexion")
	if st, body := a.post("/connexion", url.Values{"_csrf": {csrfIn(page)}, "email": {"alice@exemple.fr"}, "password": {pw}}); st != http.StatusForbidden || !strings.Contains(body, "désactivé") {
		t.Errorf("a disabled account logs in: status %d", st)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// The login form is rate-limited like the devices' login: after the
// account's allowance of failures, even the right password waits.
func TestLoginFormIsRateLimited(t *testing.T) {
	srv := relaistest.StartServer(t, server.Config{LoginFailuresPerAccount: 3})
	srv.AddUser(t, "claire@exemple.fr", "coordinateur", pw)
	b := newBrowser(t, srv.URL)
	try := func(password string) int {
		_, page := b.get("/connexion")
		st, _ := b.post("/connexion", url.Values{"_csrf": {csrfIn(page)}, "email": {"Claire@exemple.fr "}, "password": {password}})
		return st
	}
	for i := 0; i < 3; i++ {
		if st := try("pas-le-bon"); st != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d", i+1, st)
		}
	}
	if st := try(pw); st != http.StatusTooManyRequests {
		t.Errorf("after 3 failures the right password got status %d, want 429", st)
	}
	// One count for the form and the devices' login (issue 11): the API
	// refuses the account too, and says how long to wait.
	status, raw := srv.PostJSON(t, "/v1/auth/login", "", map[string]string{"email": "claire@exemple.fr", "password": pw, "device_id": uuid.NewString()})
	if status != http.StatusTooManyRequests || !strings.Contains(string(raw), "retry_after_seconds") {
		t.Errorf("the API after 3 failures on the form: %d %s", status, raw)
	}
	// Another account is not affected.
	srv.AddUser(t, "alice@exemple.fr", "conseiller", pw)
	other := newBrowser(t, srv.URL)
	other.login("alice@exemple.fr")
}

// The header greets a person by the name an administrator gave her, not
// by her e-mail address (kept in the title for who wants it); without a
// name it shows the address.
func TestHeaderShowsTheName(t *testing.T) {
	w := newWorld(t)
	b := newBrowser(t, w.srv.URL)
	b.login("claire@exemple.fr")
	header := func() string {
		st, page := b.get("/conflits")
		if st != http.StatusOK {
			t.Fatalf("conflicts page: status %d", st)
		}
		start := strings.Index(page, `class="who"`)
		end := strings.Index(page, "Se déconnecter")
		if start < 0 || end < start {
			t.Fatalf("no header in the page:\n%s", page)
		}
		return page[start:end]
	}
	if h := header(); !strings.Contains(h, ">claire@exemple.fr <small>") {
		t.Fatalf("header without a name: %s", h)
	}
	if _, err := w.srv.DB().W.Exec("UPDATE _users SET name = 'Claire Bodin' WHERE email = 'claire@exemple.fr'"); err != nil {
		t.Fatal(err)
	}
	if h := header(); !strings.Contains(h, ">Claire Bodin <small>") {
		t.Fatalf("header with a name: %s", h)
	}
}
