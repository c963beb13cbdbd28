package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/pgtest"
)

// TestMain lets the harness re-execute this test binary as the server
// child, as it re-executes the relais binary in real runs.
func TestMain(m *testing.M) {
	if os.Getenv(ChildEnv) == "1" {
		args := os.Args[1:]
		if len(args) >= 2 && args[0] == "bench" && args[1] == "_server" {
			args = args[2:]
		}
		if err := ServeChild(args, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	pgtest.Main(m)
}

// TestScenariosSmoke runs every scenario at a tiny size against a real
// server child. It checks that each completes and reports sane figures;
// it asserts no speed (targets are read from the benchmark's output).
func TestScenariosSmoke(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"ingest", Config{Size: 300}},
		{"initial", Config{Size: 600}},
		{"growth", Config{Sizes: []int{150, 300, 600}}},
		{"month", Config{Size: 100}},
		{"fleet", Config{Size: 16, Concurrency: 8}},
		{"weak", Config{Size: 20}},
	}
	if len(cases) != len(Scenarios) {
		t.Fatalf("%d smoke cases for %d scenarios", len(cases), len(Scenarios))
	}
	var results []*Result
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c.cfg.Dir = t.TempDir()
			res, err := Run(ctx, c.name, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) == 0 {
				t.Fatal("no figures")
			}
			for _, r := range res.Rows {
				if r.Wall <= 0 {
					t.Errorf("%s: wall time %v", r.Name, r.Wall)
				}
				if r.Errors != 0 {
					t.Errorf("%s: %d errors (%v)", r.Name, r.Errors, res.Notes)
				}
				if strings.HasPrefix(r.Name, "raw SQLite") || strings.HasPrefix(r.Name, "device: local") {
					continue
				}
				if r.BytesUp == 0 || r.BytesDown == 0 || r.Exchanges == 0 {
					t.Errorf("%s: no traffic measured (up %d, down %d, exchanges %d)", r.Name, r.BytesUp, r.BytesDown, r.Exchanges)
				}
				if r.ServerPeakRSS == 0 || r.DevicePeakRSS == 0 {
					t.Errorf("%s: no peak memory read (server %d, device %d)", r.Name, r.ServerPeakRSS, r.DevicePeakRSS)
				}
			}
			results = append(results, res)
		})
	}
	var out strings.Builder
	Print(&out, ThisMachine(), results)
	t.Log("\n" + out.String())
}

// TestFleetOnPostgresSmoke runs the fleet at a tiny size with two server
// children on one PostgreSQL database, devices sent to them in turn: it
// checks that both answered and nothing failed, and asserts no speed.
func TestFleetOnPostgresSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := pgtest.Server(t)
	res, err := Run(ctx, "fleet", Config{Size: 16, Concurrency: 8, Store: admin, Servers: 2, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err == nil {
			_, _ = db.Exec("DROP DATABASE IF EXISTS relais_bench_fleet WITH (FORCE)")
			db.Close()
		}
	})
	r := res.Rows[0]
	if r.Errors != 0 || r.Servers != 2 || r.Store != "postgres" || r.Exchanges == 0 {
		t.Fatalf("fleet on PostgreSQL: %d errors, %d servers, store %q, %d exchanges (%v)", r.Errors, r.Servers, r.Store, r.Exchanges, res.Notes)
	}
	if r.Extra["requests_server_1"] == 0 || r.Extra["requests_server_2"] == 0 {
		t.Fatalf("a server answered nothing: %v", r.Extra)
	}
}
