package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

const pw = "un-mot-de-passe"

// world is a small département for the dashboard's tests: a coordinator
// (Claire) with two conseillers (Alice, Bruno), and another team
// (coordinator Denis, conseillère Carole) whose data Claire's team must
// never see. Alice has two tablets, Carole one; each recorded a home
// visit with an identified beneficiary, through real devices and syncs.
type world struct {
	srv                     *relaistest.Server
	claire, alice, bruno    auth.User
	denis, carole           auth.User
	aliceA, aliceB, caroleT *device.Replica
	aliceAct, aliceBen      string
	caroleAct, caroleBen    string
	aliceName, caroleName   string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldOn(t, relaistest.Engines()[0])
}

// newWorldOn is newWorld on a store of engine e.
func newWorldOn(t *testing.T, e relaistest.Engine) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{srv: e.Start(t, server.Config{})}
	w.claire = w.srv.AddUser(t, "claire@exemple.fr", "coordinateur", pw)
	w.alice = w.srv.AddUser(t, "alice@exemple.fr", "conseiller", pw)
	w.bruno = w.srv.AddUser(t, "bruno@exemple.fr", "conseiller", pw)
	w.denis = w.srv.AddUser(t, "denis@exemple.fr", "coordinateur", pw)
	w.carole = w.srv.AddUser(t, "carole@exemple.fr", "conseiller", pw)
	for _, c := range [][2]string{{w.claire.ID, w.alice.ID}, {w.claire.ID, w.bruno.ID}, {w.denis.ID, w.carole.ID}} {
		if err := w.srv.WriteRow(ctx, "coordination", newID(), map[string]any{
			"coordinateur_id": c[0], "mediateur_id": c[1], "debut": "2025-01-01"}); err != nil {
			t.Fatalf("coordination: %v", err)
		}
	}
	w.aliceA = w.srv.LoggedInDevice(t, "alice-a", "alice@exemple.fr", pw)
	w.aliceB = w.srv.LoggedInDevice(t, "alice-b", "alice@exemple.fr", pw)
	w.caroleT = w.srv.LoggedInDevice(t, "carole", "carole@exemple.fr", pw)
	w.aliceName, w.caroleName = "Lefebvre", "Marchand"
	w.aliceAct, w.aliceBen = record(t, w.aliceA, w.alice.ID, "Jeanne", w.aliceName, "Laval", "53130")
	w.caroleAct, w.caroleBen = record(t, w.caroleT, w.carole.ID, "Paul", w.caroleName, "Mayenne", "53147")
	syncOK(t, w.aliceA)
	syncOK(t, w.aliceB)
	syncOK(t, w.caroleT)
	return w
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// record writes, on a device, with plain SQL as an application would, a
// home visit with one identified beneficiary.
func record(t *testing.T, r *device.Replica, owner, prenom, nom, commune, insee string) (act, ben string) {
	t.Helper()
	act, ben = newID(), newID()
	stmts := []struct {
		q    string
		args []any
	}{
		{`INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom, annee_naissance, commune, commune_code_insee,
			genre, tranche_age, statut_social) VALUES (?, ?, 0, ?, ?, 1948, ?, ?, 'feminin', 'soixante_dix_plus', 'retraite')`,
			[]any{ben, owner, prenom, nom, commune, insee}},
		{`INSERT INTO activite (id, mediateur_id, type, date, duree, type_lieu, commune, code_insee, thematiques, materiel, autonomie)
			VALUES (?, ?, 'individuel', '2026-11-20', 45, 'domicile', ?, ?, '["email","aide_aux_demarches_administratives","argent_impots"]',
			'["tablette"]', 'partiellement_autonome')`, []any{act, owner, commune, insee}},
		{`INSERT INTO accompagnement (id, mediateur_id, activite_id, beneficiaire_id, premier_accompagnement) VALUES (?, ?, ?, ?, 1)`,
			[]any{newID(), owner, act, ben}},
	}
	for _, s := range stmts {
		if _, err := r.DB().ExecContext(context.Background(), s.q, s.args...); err != nil {
			t.Fatalf("record on device: %v", err)
		}
	}
	return act, ben
}

func syncOK(t *testing.T, r *device.Replica) device.Report {
	t.Helper()
	rep, err := r.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync %s: %v", r.Node(), err)
	}
	if rep.Rejected > 0 {
		t.Fatalf("sync %s: %d changes rejected", r.Node(), rep.Rejected)
	}
	return rep
}

// concurrentEdit makes two devices of the same person edit one cell
// without syncing in between, then syncs both: the server records the
// losing write as a conflict.
func concurrentEdit(t *testing.T, a, b *device.Replica, table, pk, col string, va, vb any) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.DB().ExecContext(ctx, "UPDATE "+table+" SET "+col+" = ? WHERE id = ?", va, pk); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB().ExecContext(ctx, "UPDATE "+table+" SET "+col+" = ? WHERE id = ?", vb, pk); err != nil {
		t.Fatal(err)
	}
	syncOK(t, a)
	syncOK(t, b)
}

// browser is an HTTP client that keeps cookies, as a browser does.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil) // nil options never fail
	return &browser{t: t, base: base, c: &http.Client{Jar: jar}}
}

var csrfRe = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

func csrfIn(body string) string {
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// api calls the JSON API with the session cookie, and the CSRF header
// when csrf is not empty.
func (b *browser) api(method, path, csrf string, body any, into any) int {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = strings.NewReader(string(data))
	}
	req, _ := http.NewRequest(method, b.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if into != nil {
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			b.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

// login logs in through the login form, as a person would.
func (b *browser) login(email string) {
	b.t.Helper()
	_, page := b.get("/connexion")
	status, body := b.post("/connexion", url.Values{"_csrf": {csrfIn(page)}, "email": {email}, "password": {pw}})
	if status != http.StatusOK || !strings.Contains(body, email) {
		b.t.Fatalf("login %s: status %d, page does not name the user", email, status)
	}
}

// sessionCSRF is the CSRF token of the logged-in session.
func (b *browser) sessionCSRF() string {
	b.t.Helper()
	var me struct {
		CSRF string `json:"csrf_token"`
	}
	if st := b.api("GET", "/v1/dashboard/me", "", nil, &me); st != http.StatusOK || me.CSRF == "" {
		b.t.Fatalf("GET /v1/dashboard/me: status %d, no CSRF token", st)
	}
	return me.CSRF
}

type conflictJSON struct {
	ID         int64  `json:"id"`
	Table      string `json:"table"`
	PK         string `json:"pk"`
	Column     string `json:"column"`
	Hidden     bool   `json:"hidden"`
	Personal   bool   `json:"personal"`
	CanResolve bool   `json:"can_resolve"`
	Resolved   bool   `json:"resolved"`
	Winner     struct {
		Value   any    `json:"value"`
		Display string `json:"display"`
	} `json:"winner"`
	Loser struct {
		Value   any    `json:"value"`
		Display string `json:"display"`
	} `json:"loser"`
}

func (b *browser) conflicts() []conflictJSON {
	b.t.Helper()
	var out struct {
		Conflicts []conflictJSON `json:"conflicts"`
	}
	if st := b.api("GET", "/v1/dashboard/conflicts?state=all", "", nil, &out); st != http.StatusOK {
		b.t.Fatalf("GET conflicts: %d", st)
	}
	return out.Conflicts
}

func findConflict(cs []conflictJSON, table, col string) (conflictJSON, bool) {
	for _, c := range cs {
		if c.Table == table && c.Column == col {
			return c, true
		}
	}
	return conflictJSON{}, false
}
