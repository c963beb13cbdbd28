package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/server/web"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// dashboardOn serves the dashboard alone on db, as one of several
// servers sharing it, and returns its URL.
func dashboardOn(t *testing.T, db *store.DB) string {
	t.Helper()
	return dashboardWith(t, db, nil)
}

// dashboardWith is dashboardOn with the synced schema the statistics and
// exports read (nil for none).
func dashboardWith(t *testing.T, db *store.DB, schema *syncproto.Schema) string {
	t.Helper()
	acc := &auth.Accounts{W: db.W, R: db.R}
	limits := &auth.LoginLimits{W: db.W, R: db.R, PerAccount: 3, PerAddress: 50, Window: time.Hour, Now: time.Now}
	h, err := web.New(web.Deps{DB: db, Accounts: acc, LoginLimits: limits, Schema: func() *syncproto.Schema { return schema },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		RevokeDevice: func(ctx context.Context, actor, device string) error {
			return acc.RevokeDevice(ctx, device, actor, time.Now())
		}})
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{Immutable: true, DisableStartupMessage: true})
	h.Mount(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	return "http://" + ln.Addr().String()
}

// TestDashboardSessionsAcrossServers: on both engines, a dashboard
// session opened on one server is good on another sharing the database,
// a logout on either ends it on both, and failed logins on one count on
// the other. The fleet page, which reads the devices, serves on both.
func TestDashboardSessionsAcrossServers(t *testing.T) {
	ctx := context.Background()
	for _, e := range relaistest.Engines() {
		t.Run(e.Name, func(t *testing.T) {
			addr := e.New(t)
			one, two := e.Open(t, addr), e.Open(t, addr)
			acc := &auth.Accounts{W: one.W, R: one.R}
			u, err := acc.AddUser(ctx, "coord@exemple.fr", auth.RoleAdmin, pw)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := one.W.ExecContext(ctx, "INSERT INTO _devices (id, user_id, name, created_at) VALUES (?, ?, 'Tablette de test', ?)",
				newID(), u.ID, time.Now().UnixMilli()); err != nil {
				t.Fatal(err)
			}
			urlA, urlB := dashboardOn(t, one), dashboardOn(t, two)

			// Log in on A, landing on the fleet page.
			a := newBrowser(t, urlA)
			_, page := a.get("/connexion")
			st, body := a.post("/connexion", url.Values{"_csrf": {csrfIn(page)}, "email": {"COORD@exemple.fr"}, "password": {pw}, "suite": {"/flotte"}})
			if st != http.StatusOK || !strings.Contains(body, "Tablette de test") {
				t.Fatalf("login on server A: status %d, the fleet page does not list the device", st)
			}
			// The same cookie on B.
			b := newBrowser(t, urlB)
			ua, _ := url.Parse(urlA)
			ub, _ := url.Parse(urlB)
			b.c.Jar.SetCookies(ub, a.c.Jar.Cookies(ua))
			var me struct {
				Email string `json:"email"`
				CSRF  string `json:"csrf_token"`
			}
			if st := b.api("GET", "/v1/dashboard/me", "", nil, &me); st != http.StatusOK || !strings.EqualFold(me.Email, "coord@exemple.fr") || me.CSRF == "" {
				t.Fatalf("the session from server A on server B: status %d, %+v", st, me)
			}
			if st, body := b.get("/flotte"); st != http.StatusOK || !strings.Contains(body, "Tablette de test") {
				t.Fatalf("fleet page on server B: status %d", st)
			}
			// Log out on B: A no longer knows the session.
			if st, _ := b.post("/deconnexion", url.Values{"_csrf": {me.CSRF}}); st != http.StatusOK && st != http.StatusSeeOther {
				t.Fatalf("logout on server B: status %d", st)
			}
			if st := a.api("GET", "/v1/dashboard/me", "", nil, nil); st != http.StatusUnauthorized {
				t.Fatalf("server A after a logout on server B: status %d, want 401", st)
			}

			// Three failures, alternating servers: the fourth attempt is
			// refused on either, the right password too.
			for i := range 3 {
				br := newBrowser(t, []string{urlA, urlB}[i%2])
				_, page := br.get("/connexion")
				if st, _ := br.post("/connexion", url.Values{"_csrf": {csrfIn(page)}, "email": {"coord@exemple.fr"}, "password": {"pas-le-bon"}}); st != http.StatusUnauthorized {
					t.Fatalf("failure %d: status %d", i+1, st)
				}
			}
			for _, base := range []string{urlA, urlB} {
				br := newBrowser(t, base)
				_, page := br.get("/connexion")
				st, body := br.post("/connexion", url.Values{"_csrf": {csrfIn(page)}, "email": {"coord@exemple.fr"}, "password": {pw}})
				if st != http.StatusTooManyRequests || !strings.Contains(body, "Trop de tentatives") {
					t.Fatalf("after three failures, on %s: status %d", base, st)
				}
			}
		})
	}
}

// TestConflictValuesKeepTheirTypes: on both engines, a conflict on a
// number shows both sides as numbers, and restoring the losing one
// writes the number back, which reaches the devices as a number.
func TestConflictValuesKeepTheirTypes(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		w := newWorldOn(t, e)
		concurrentEdit(t, w.aliceA, w.aliceB, "activite", w.aliceAct, "duree", 60, 90)
		claire := newBrowser(t, w.srv.URL)
		claire.login("claire@exemple.fr")
		c, ok := findConflict(claire.conflicts(), "activite", "duree")
		if !ok {
			t.Fatal("no conflict on the duration")
		}
		if c.Winner.Value != float64(90) || c.Loser.Value != float64(60) {
			t.Fatalf("the conflict shows %#v against %#v, want the numbers 90 and 60", c.Winner.Value, c.Loser.Value)
		}
		if st := claire.api("POST", fmt.Sprintf("/v1/dashboard/conflicts/%d/resolve", c.ID), claire.sessionCSRF(),
			map[string]any{"choice": "restore_loser"}, nil); st != http.StatusOK {
			t.Fatalf("restore the losing value: status %d", st)
		}
		syncOK(t, w.aliceA)
		var typ string
		var v int64
		if err := w.aliceA.DB().QueryRow("SELECT typeof(duree), duree FROM activite WHERE id = ?", w.aliceAct).Scan(&typ, &v); err != nil {
			t.Fatal(err)
		}
		if typ != "integer" || v != 60 {
			t.Fatalf("after restoring 60, the tablet holds %d as %s", v, typ)
		}
	})
}
