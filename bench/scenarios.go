package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
)

// Config says how big each scenario runs and where.
type Config struct {
	// Dir is the work directory (databases, server logs); it is kept.
	Dir string
	// ProfileDir, when set, receives pprof CPU and allocation profiles of
	// the server (server-PHASE.*.pprof) for every server started.
	ProfileDir string
	// Size is the scenario's main size (activities; devices for the
	// fleet); zero takes the scenario's default.
	Size int
	// Sizes are the growth curve's points.
	Sizes []int
	// Concurrency is how many fleet devices sync at once.
	Concurrency int
	Seed        uint64
	// Store, when set, is a PostgreSQL server (postgres://…) the servers
	// keep their state in instead of SQLite: each scenario runs in a
	// database of its own there, relais_bench_<scenario>, dropped and
	// created again first, so the address's user must be allowed to
	// create databases.
	Store string
	// Servers is how many server processes share the store (1 when
	// zero); more than one needs Store. Devices reach them in turn, each
	// request the next, as a round-robin load balancer sends them.
	Servers int
	// Progress receives one line per step; nil discards.
	Progress io.Writer
}

func (c *Config) logf(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, format+"\n", args...)
	}
}

func (c *Config) size(def int) int {
	if c.Size > 0 {
		return c.Size
	}
	return def
}

// Scenario is one benchmark.
type Scenario struct {
	Name  string
	Title string
	run   func(ctx context.Context, cfg Config) (*Result, error)
}

// Scenarios lists the benchmarks in the order.
var Scenarios = []Scenario{
	{"ingest", "pushing N activities vs inserting them into SQLite directly (default N=10000)", runIngest},
	{"initial", "a fresh coordinator device pulls the département (default 50000 activities)", runInitial},
	{"growth", "initial sync at growing sizes (default 10000, 50000, 200000)", runGrowth},
	{"month", "back from a month away: every activity cell rewritten 10 times elsewhere (default 5000)", runMonth},
	{"fleet", "17:00: N devices push a day's work and pull, 200 at a time (default 1000 devices)", runFleet},
	{"weak", "a day's work (20 activities) over a 2G link", runWeak},
}

// Run runs the scenario called name ("1".."6" work too).
func Run(ctx context.Context, name string, cfg Config) (*Result, error) {
	for i, s := range Scenarios {
		if s.Name == name || fmt.Sprint(i+1) == name {
			if cfg.Dir == "" {
				dir, err := os.MkdirTemp("", "relais-bench-")
				if err != nil {
					return nil, fmt.Errorf("bench %s: %w", s.Name, err)
				}
				defer os.RemoveAll(dir)
				cfg.Dir = dir
			}
			if cfg.Seed == 0 {
				cfg.Seed = 53
			}
			res, err := s.run(ctx, cfg)
			if err != nil {
				return nil, fmt.Errorf("bench %s: %w", s.Name, err)
			}
			res.Scenario, res.Title = s.Name, s.Title
			return res, nil
		}
	}
	return nil, fmt.Errorf("bench: no scenario %q", name)
}

// now anchors generated dates; data is dated in the past two years.
func now() time.Time { return time.Now().Add(-time.Hour) }

func countRows(ctx context.Context, db *sql.DB, table string) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n)
	return n, err
}

// conseiller prepares a server with one conseiller's account and the
// structures where they work (reference data, which only administrators
// write), and returns the account's id and the structures.
func (r *rig) conseiller(ctx context.Context, email string) (string, []row, error) {
	var userID string
	var structures []row
	err := r.prepare(ctx, func(db *store.DB) error {
		if err := addUsers(ctx, db, auth.RoleConseiller, []string{email}); err != nil {
			return err
		}
		if err := db.R.QueryRowContext(ctx, "SELECT id FROM _users WHERE email = ?", email).Scan(&userID); err != nil {
			return fmt.Errorf("user %s: %w", email, err)
		}
		structures = generate(r.cfg.Seed, 0, now(), []string{userID}).Structures
		return seed(ctx, db, append(slices.Clone(structures), workplaces(userID, structures)...))
	})
	return userID, structures, err
}

// workplaces says that the conseiller works in every structure, so that
// the server lets them record activities there.
func workplaces(userID string, structures []row) []row {
	g := newGen(uint64(len(userID)))
	out := make([]row, len(structures))
	for i, s := range structures {
		out[i] = row{Table: "mediateur_en_activite", ID: g.uuidAt(s.At),
			Values: map[string]any{"mediateur_id": userID, "structure_id": s.ID}, Author: s.Author, At: s.At}
	}
	return out
}

// generateFor draws n activities of one conseiller in the given structures.
func generateFor(seed uint64, n int, end time.Time, userID string, structures []row) []row {
	g := newGen(seed)
	node := g.uuidAt(end)
	start := end.AddDate(0, 0, -1)
	if n > 20 {
		start = end.AddDate(-2, 0, 0)
	}
	out := make([]row, n)
	for i := range out {
		// Divide first: two years in nanoseconds times i overflows int64
		// past i = 146, which folded the activities into a few days.
		at := start.Add(end.Sub(start) / time.Duration(n) * time.Duration(i))
		out[i] = g.activite(at, userID, node, structures)
	}
	return out
}
