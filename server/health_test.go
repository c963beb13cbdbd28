package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// readyz fetches /readyz and decodes its answer.
func readyz(t *testing.T, url string) (int, server.Readiness) {
	t.Helper()
	status, raw := get(t, url+"/readyz")
	var r server.Readiness
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("/readyz answered %d %q: %v", status, raw, err)
	}
	return status, r
}

// /healthz says the process answers; /readyz says whether it can take
// exchanges, and which check fails when it cannot: the disk floor
// crossed, the schema behind the binary, the database unreachable. The
// liveness probe stays 200 through all of them.
func TestReadiness(t *testing.T) {
	tests := []struct {
		name      string
		cfg       server.Config
		breakIt   func(t *testing.T, srv *relaistest.Server)
		failCheck string // "" when the server must be ready
		want      string // in the failed check's verdict
	}{
		{name: "fresh server", cfg: server.Config{}},
		{name: "floor above free space", cfg: server.Config{MinFreeDisk: 1 << 60},
			failCheck: "disk", want: "below the floor of"},
		{name: "no disk floor", cfg: server.Config{MinFreeDisk: -1}},
		{name: "migrations behind", cfg: server.Config{},
			breakIt: func(t *testing.T, srv *relaistest.Server) {
				if _, err := srv.DB().W.Exec("DELETE FROM _migrations_server WHERE version_id = (SELECT MAX(version_id) FROM _migrations_server)"); err != nil {
					t.Fatal(err)
				}
			},
			failCheck: "migrations", want: "this binary expects"},
		// A newer release migrated the shared database (several servers
		// upgraded one at a time, README): this one no longer says ready.
		{name: "migrations ahead", cfg: server.Config{},
			breakIt: func(t *testing.T, srv *relaistest.Server) {
				if _, err := srv.DB().W.Exec("INSERT INTO _migrations_domain (version_id, is_applied) VALUES (99999, ?)", true); err != nil {
					t.Fatal(err)
				}
			},
			failCheck: "migrations", want: "at version 99999, this binary expects"},
		{name: "database unreachable", cfg: server.Config{},
			breakIt: func(t *testing.T, srv *relaistest.Server) {
				if err := srv.DB().R.Close(); err != nil {
					t.Fatal(err)
				}
			},
			failCheck: "database", want: "database unreachable"},
	}
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		for _, tt := range tests {
			if e.Name == "postgres" && tt.failCheck == "disk" {
				// PostgreSQL's disk is not the server's: no floor there.
				tt.failCheck = ""
			}
			t.Run(tt.name, func(t *testing.T) { readinessCase(t, e, tt.cfg, tt.breakIt, tt.failCheck, tt.want) })
		}
	})
}

// readinessCase starts a server on e, breaks it as told, and checks
// what /healthz and /readyz answer.
func readinessCase(t *testing.T, e relaistest.Engine, cfg server.Config, breakIt func(t *testing.T, srv *relaistest.Server), failCheck, want string) {
	srv := e.Start(t, cfg)
	if breakIt != nil {
		breakIt(t, srv)
	}
	if status, _ := get(t, srv.URL+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz answered %d", status)
	}
	status, r := readyz(t, srv.URL)
	if failCheck == "" {
		if status != http.StatusOK || !r.Ready {
			t.Fatalf("/readyz answered %d %+v, want ready", status, r)
		}
		for _, c := range []string{"database", "migrations", "disk"} {
			if r.Checks[c] != "ok" {
				t.Errorf("check %s: %q", c, r.Checks[c])
			}
		}
		return
	}
	if status != http.StatusServiceUnavailable || r.Ready {
		t.Fatalf("/readyz answered %d %+v, want 503 not ready", status, r)
	}
	if got := r.Checks[failCheck]; !strings.Contains(got, want) {
		t.Errorf("check %s says %q, want it to mention %q (all: %+v)", failCheck, got, want, r.Checks)
	}
	for c, v := range r.Checks {
		if c != failCheck && v != "ok" && !strings.HasPrefix(v, "not checked") {
			t.Errorf("check %s failed too: %q", c, v)
		}
	}
}
