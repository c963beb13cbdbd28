package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/demo"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
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

// --- 1. ingest

func runIngest(ctx context.Context, cfg Config) (*Result, error) {
	n := cfg.size(10000)
	res := &Result{}
	r, err := newRig(cfg, "ingest")
	if err != nil {
		return nil, err
	}
	defer r.close()
	userID, structures, err := r.conseiller(ctx, "ingest@bench.relais")
	if err != nil {
		return nil, err
	}
	if err := r.start(ctx, "ingest"); err != nil {
		return nil, err
	}
	d, err := r.openDevice(ctx, "tablet", "ingest@bench.relais")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	rows := generateFor(cfg.Seed, n, now(), userID, structures)

	cfg.logf("  capturing %d activities on the device", n)
	m, err := r.begin()
	if err != nil {
		return nil, err
	}
	if err := insertRows(ctx, d.DB(), d.Schema(), rows); err != nil {
		return nil, err
	}
	capture, err := m.end("device: local writes (SQL + capture)", n)
	if err != nil {
		return nil, err
	}

	cfg.logf("  pushing")
	if m, err = r.begin(); err != nil {
		return nil, err
	}
	rep, err := syncAll(ctx, d)
	if err != nil {
		return nil, err
	}
	push, err := m.end("relais: push to server", n)
	if err != nil {
		return nil, err
	}
	push.Extra = map[string]float64{"cells": float64(rep.Pushed), "body_bytes_up": float64(rep.BytesUp)}

	cfg.logf("  raw SQLite")
	raw, err := rawInsert(ctx, filepath.Join(r.dir, "raw.db"), rows, n)
	if err != nil {
		return nil, err
	}
	push.Extra["ratio_vs_raw"] = push.PerSecond / raw.PerSecond
	// Wall times move with whatever else the machine runs; CPU times are
	// each process's own. Relais's CPU is the server's and the device's
	// together, raw SQLite's is the insert's.
	if relaisCPU := push.ServerCPU + push.DeviceCPU; relaisCPU > 0 && raw.DeviceCPU > 0 {
		push.Extra["cpu_ratio_vs_raw"] = raw.DeviceCPU.Seconds() / relaisCPU.Seconds()
	}

	cfg.logf("  a day's work")
	day := generateFor(cfg.Seed+7, 20, time.Now().Add(-time.Minute), userID, structures)
	if err := insertRows(ctx, d.DB(), d.Schema(), day); err != nil {
		return nil, err
	}
	if m, err = r.begin(); err != nil {
		return nil, err
	}
	drep, err := syncAll(ctx, d)
	if err != nil {
		return nil, err
	}
	dayRow, err := m.end("relais: a day's work (20 activities)", 20)
	if err != nil {
		return nil, err
	}
	dayRow.Extra = map[string]float64{"cells": float64(drep.Pushed), "body_bytes_up": float64(drep.BytesUp)}
	res.Rows = append(res.Rows, capture, push, raw, dayRow)
	res.Notes = append(res.Notes,
		"ratio_vs_raw = Relais push rate / raw SQLite insert rate of the same rows (target >= 0.5); cpu_ratio_vs_raw = raw SQLite's CPU time / Relais's (server + device), the same comparison without the machine's load",
		"a day's work: bytes up on TCP include HTTP headers; body_bytes_up is the gzip body alone (target < 2 KB)")
	return res, nil
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
		return seed(ctx, db.W, append(slices.Clone(structures), workplaces(userID, structures)...))
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

// rawInsert inserts the rows into a fresh SQLite database with the same
// durability settings as the server (WAL, synchronous=FULL), in one
// transaction: the floor Relais ingest is compared with.
func rawInsert(ctx context.Context, path string, rows []row, n int) (Row, error) {
	db, err := store.Open(path, store.Options{})
	if err != nil {
		return Row{}, err
	}
	defer db.Close()
	if err := migrations.Up(ctx, db.W, migrations.Domain); err != nil {
		return Row{}, err
	}
	schema, err := loadSchema(ctx, db.W)
	if err != nil {
		return Row{}, err
	}
	before, err := readUsage(os.Getpid())
	if err != nil {
		return Row{}, err
	}
	start := time.Now()
	if err := insertRows(ctx, db.W, schema, rows); err != nil {
		return Row{}, err
	}
	wall := time.Since(start)
	after, err := readUsage(os.Getpid())
	if err != nil {
		return Row{}, err
	}
	// The insert runs in this process: its CPU time is the device column.
	return Row{Name: "raw SQLite: one transaction", Activities: n, Wall: wall, PerSecond: float64(n) / wall.Seconds(),
		DeviceCPU: after.CPU - before.CPU}, nil
}

// --- 2. initial sync, 3. growth

func initialSync(ctx context.Context, cfg Config, name string, n int) (Row, error) {
	r, err := newRig(cfg, name)
	if err != nil {
		return Row{}, err
	}
	defer r.close()
	cfg.logf("  generating the demo département with %d activities", n)
	var sum demo.Summary
	err = r.prepare(ctx, func(db *store.DB) error {
		var err error
		sum, err = demo.Generate(ctx, db, demo.Options{Seed: cfg.Seed, Activities: n, Accounts: true})
		return err
	})
	if err != nil {
		return Row{}, err
	}
	coord := ""
	for _, a := range sum.Accounts {
		if a.Role == auth.RoleCoordinateur {
			coord = a.Email
		}
	}
	if coord == "" {
		return Row{}, fmt.Errorf("the demo département has no coordinator account")
	}
	if err := r.start(ctx, name); err != nil {
		return Row{}, err
	}
	d, err := r.openDeviceAs(ctx, "coordinator", coord, demo.DefaultPassword)
	if err != nil {
		return Row{}, err
	}
	defer d.Close()
	cfg.logf("  pulling")
	m, err := r.begin()
	if err != nil {
		return Row{}, err
	}
	rep, err := syncAll(ctx, d)
	if err != nil {
		return Row{}, err
	}
	row, err := m.end(fmt.Sprintf("initial sync, %d activities", sum.Activites), sum.Activites)
	if err != nil {
		return Row{}, err
	}
	got, err := countRows(ctx, d.DB(), "activite")
	if err != nil {
		return Row{}, err
	}
	if got == 0 {
		return Row{}, fmt.Errorf("the coordinator's replica received no activity")
	}
	row.Extra = map[string]float64{
		"cells": float64(rep.Pulled), "server_cells": float64(sum.Cells),
		"activities_received": float64(got), "beneficiaries": float64(sum.Beneficiaires),
		"body_bytes_down": float64(rep.BytesDown), "us_per_activity": float64(row.Wall.Microseconds()) / float64(sum.Activites),
	}
	return row, nil
}

func runInitial(ctx context.Context, cfg Config) (*Result, error) {
	row, err := initialSync(ctx, cfg, "initial", cfg.size(50000))
	if err != nil {
		return nil, err
	}
	return &Result{Rows: []Row{row}, Notes: []string{
		"the demo département (package demo): bytes per activity count every row the coordinator receives, beneficiaries, appointments and team included (targets: < 2 s, < 100 B/activity)",
		"a coordinator receives the activities of the conseillers they follow, within the coordinations' dates, and beneficiaries without their personal columns: activities_received < activities",
	}}, nil
}

func runGrowth(ctx context.Context, cfg Config) (*Result, error) {
	sizes := cfg.Sizes
	if len(sizes) == 0 {
		sizes = []int{10000, 50000, 200000}
	}
	res := &Result{}
	for _, n := range sizes {
		row, err := initialSync(ctx, cfg, fmt.Sprintf("growth-%d", n), n)
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, row)
	}
	first, last := res.Rows[0], res.Rows[len(res.Rows)-1]
	perAct := func(r Row) float64 { return r.Wall.Seconds() / float64(r.Activities) }
	res.Notes = append(res.Notes, fmt.Sprintf("time per activity at %d vs %d: x%.2f; bytes per activity: x%.2f (1.0 = linear)",
		last.Activities, first.Activities, perAct(last)/perAct(first), last.BytesPerActivity/first.BytesPerActivity))
	var curve strings.Builder
	for _, r := range res.Rows {
		fmt.Fprintf(&curve, " %d:%s/%s", r.Activities, dur(r.Wall), size(r.BytesUp+r.BytesDown))
	}
	res.Notes = append(res.Notes, "curve (activities:time/bytes):"+curve.String())
	return res, nil
}

// --- 4. back from a month away

func runMonth(ctx context.Context, cfg Config) (*Result, error) {
	n := cfg.size(5000)
	r, err := newRig(cfg, "month")
	if err != nil {
		return nil, err
	}
	defer r.close()
	// Activities only (and their structures), so that the initial sync
	// and the catch-up carry the same rows.
	var ds *dataset
	err = r.prepare(ctx, func(db *store.DB) error {
		if err := addUsers(ctx, db, auth.RoleAdmin, []string{"away@bench.relais", "office@bench.relais"}); err != nil {
			return err
		}
		ds = generate(cfg.Seed, n, now(), []string{"mediateur-bench"})
		return seed(ctx, db.W, append(slices.Clone(ds.Structures), ds.Activites...))
	})
	if err != nil {
		return nil, err
	}
	if err := r.start(ctx, "month"); err != nil {
		return nil, err
	}
	away, err := r.openDevice(ctx, "away", "away@bench.relais")
	if err != nil {
		return nil, err
	}
	defer away.Close()
	m, err := r.begin()
	if err != nil {
		return nil, err
	}
	irep, err := syncAll(ctx, away)
	if err != nil {
		return nil, err
	}
	initRow, err := m.end("initial sync before leaving", n)
	if err != nil {
		return nil, err
	}
	initRow.Extra = map[string]float64{"cells": float64(irep.Pulled)}

	office, err := r.openDevice(ctx, "office", "office@bench.relais")
	if err != nil {
		return nil, err
	}
	defer office.Close()
	if _, err := syncAll(ctx, office); err != nil {
		return nil, err
	}
	cfg.logf("  rewriting every activity 10 times elsewhere")
	if m, err = r.begin(); err != nil {
		return nil, err
	}
	pushed := 0
	for round := 1; round <= 10; round++ {
		if err := updateActivities(ctx, office.DB(), office.Schema(), ds, round); err != nil {
			return nil, err
		}
		rep, err := syncAll(ctx, office)
		if err != nil {
			return nil, err
		}
		pushed += rep.Pushed
	}
	rewrites, err := m.end("elsewhere: 10 rounds of rewrites, pushed", 10*n)
	if err != nil {
		return nil, err
	}
	rewrites.Extra = map[string]float64{"cells": float64(pushed)}

	cfg.logf("  catching up")
	if m, err = r.begin(); err != nil {
		return nil, err
	}
	crep, err := syncAll(ctx, away)
	if err != nil {
		return nil, err
	}
	catch, err := m.end("catch-up after a month", n)
	if err != nil {
		return nil, err
	}
	// What a device that never saw the rows pays for their current state:
	// the floor a catch-up should meet.
	fresh, err := r.openDevice(ctx, "fresh", "away@bench.relais")
	if err != nil {
		return nil, err
	}
	defer fresh.Close()
	if m, err = r.begin(); err != nil {
		return nil, err
	}
	frep, err := syncAll(ctx, fresh)
	if err != nil {
		return nil, err
	}
	freshRow, err := m.end("fresh device: initial sync of the current state", n)
	if err != nil {
		return nil, err
	}
	freshRow.Extra = map[string]float64{"cells": float64(frep.Pulled)}
	catch.Extra = map[string]float64{
		"cells":              float64(crep.Pulled),
		"bytes_vs_initial":   float64(catch.BytesUp+catch.BytesDown) / float64(initRow.BytesUp+initRow.BytesDown),
		"bytes_vs_fresh":     float64(catch.BytesUp+catch.BytesDown) / float64(freshRow.BytesUp+freshRow.BytesDown),
		"cells_vs_rewritten": float64(crep.Pulled) / float64(max(pushed, 1)),
	}
	// The catch-up must bring the last round, not an older one.
	var duree int64
	if err := away.DB().QueryRowContext(ctx, "SELECT duree FROM activite WHERE id = ?", ds.Activites[0].ID).Scan(&duree); err != nil {
		return nil, fmt.Errorf("check catch-up: %w", err)
	}
	if want := variant(ds.Activites[0], 10, ds.Structures)["duree"]; duree != want {
		return nil, fmt.Errorf("after catch-up, duree = %d, want %v", duree, want)
	}
	return &Result{Rows: []Row{initRow, rewrites, catch, freshRow}, Notes: []string{
		"bytes_vs_initial: catch-up bytes / the away device's initial-sync bytes for the same rows (the rewrites made the rows longer: every activity now has notes);",
		"bytes_vs_fresh: catch-up bytes / a fresh device's initial sync of the current state (1.0 = the catch-up costs the current state, not the history);",
		"cells_vs_rewritten: cells pulled / cell versions written while away",
	}}, nil
}

// updateActivities rewrites every activity on db with the round's values,
// in one transaction.
func updateActivities(ctx context.Context, db *sql.DB, schema *syncproto.Schema, ds *dataset, round int) error {
	t := schema.Tables["activite"]
	cols := t.ColumnNames()
	sets := make([]string, len(cols))
	for i, c := range cols {
		sets[i] = fmt.Sprintf("%q = ?", c)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rewrite: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	st, err := tx.PrepareContext(ctx, "UPDATE activite SET "+strings.Join(sets, ", ")+" WHERE id = ?")
	if err != nil {
		return fmt.Errorf("rewrite: %w", err)
	}
	defer st.Close()
	for _, a := range ds.Activites {
		v := variant(a, round, ds.Structures)
		args := make([]any, 0, len(cols)+1)
		for _, c := range cols {
			args = append(args, v[c])
		}
		args = append(args, a.ID)
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("rewrite %s: %w", a.ID, err)
		}
	}
	return tx.Commit()
}

// --- 5. fleet at 17:00

func runFleet(ctx context.Context, cfg Config) (*Result, error) {
	n := cfg.size(1000)
	conc := cfg.Concurrency
	if conc <= 0 {
		conc = 200
	}
	r, err := newRig(cfg, "fleet")
	if err != nil {
		return nil, err
	}
	defer r.close()
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("fleet-%04d@bench.relais", i)
	}
	var structures []row
	cfg.logf("  creating %d accounts", n)
	err = r.prepare(ctx, func(db *store.DB) error {
		if err := addUsers(ctx, db, auth.RoleConseiller, emails); err != nil {
			return err
		}
		ds := generate(cfg.Seed, 0, now(), []string{"structures"})
		structures = ds.Structures
		return seed(ctx, db.W, structures)
	})
	if err != nil {
		return nil, err
	}
	if err := r.start(ctx, "fleet"); err != nil {
		return nil, err
	}
	cfg.logf("  enrolling %d devices and writing their day", n)
	devices := make([]*device.Replica, n)
	defer func() {
		for _, d := range devices {
			if d != nil {
				d.Close()
			}
		}
	}()
	if err := parallel(ctx, 4, n, func(i int) error {
		d, err := r.openDevice(ctx, fmt.Sprintf("fleet-%04d", i), emails[i])
		if err != nil {
			return err
		}
		devices[i] = d
		if _, err := syncAll(ctx, d); err != nil {
			return err
		}
		var userID string
		if err := d.DB().QueryRowContext(ctx, "SELECT user_id FROM _device WHERE id = 1").Scan(&userID); err != nil {
			return err
		}
		g := newGen(cfg.Seed + uint64(i))
		day := make([]row, 20)
		for k := range day {
			day[k] = g.activite(time.Now().Add(-time.Duration(20-k)*20*time.Minute), userID, d.Node(), structures)
		}
		return insertRows(ctx, d.DB(), d.Schema(), day)
	}); err != nil {
		return nil, err
	}

	cfg.logf("  17:00: %d devices sync, %d at a time", n, conc)
	m, err := r.begin()
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	errs, pushed := 0, 0
	var firstErr error
	_ = parallel(ctx, conc, n, func(i int) error {
		rep, err := devices[i].Sync(ctx)
		mu.Lock()
		defer mu.Unlock()
		pushed += rep.Pushed
		if err != nil {
			errs++
			if firstErr == nil {
				firstErr = err
			}
		}
		return nil
	})
	row, err := m.end(fmt.Sprintf("%d devices, %d at a time", n, conc), 20*n)
	if err != nil {
		return nil, err
	}
	row.Errors = errs
	row.Extra = map[string]float64{"devices": float64(n), "concurrency": float64(conc), "cells_pushed": float64(pushed)}
	res := &Result{Rows: []Row{row}, Notes: []string{
		"latency is per exchange as a device sees it (request sent to answer read); targets: p99 < 1 s, no error, server peak < 200 MB",
		"device figures are this process, which holds every device replica",
	}}
	if firstErr != nil {
		res.Notes = append(res.Notes, "first error: "+firstErr.Error())
	}
	return res, nil
}

// parallel runs fn(0..n-1) with at most k at once and returns the first
// error.
func parallel(ctx context.Context, k, n int, fn func(i int) error) error {
	sem := make(chan struct{}, k)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// --- 6. weak link

func runWeak(ctx context.Context, cfg Config) (*Result, error) {
	n := cfg.size(20)
	r, err := newRig(cfg, "weak")
	if err != nil {
		return nil, err
	}
	defer r.close()
	userID, structures, err := r.conseiller(ctx, "panda@bench.relais")
	if err != nil {
		return nil, err
	}
	if err := r.start(ctx, "weak"); err != nil {
		return nil, err
	}
	link, err := startShaper(strings.TrimPrefix(r.srv.URL, "http://"), profile2G)
	if err != nil {
		return nil, err
	}
	defer link.Close()
	r.serverURL = "http://" + link.Addr()
	d, err := r.openDevice(ctx, "panda", "panda@bench.relais")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	day := generateFor(cfg.Seed, n, time.Now().Add(-time.Minute), userID, structures)
	if err := insertRows(ctx, d.DB(), d.Schema(), day); err != nil {
		return nil, err
	}
	m, err := r.begin()
	if err != nil {
		return nil, err
	}
	rep, err := syncAll(ctx, d)
	if err != nil {
		return nil, err
	}
	row, err := m.end(fmt.Sprintf("%d activities over %s", n, profile2G.Name), n)
	if err != nil {
		return nil, err
	}
	row.Extra = map[string]float64{"cells": float64(rep.Pushed), "body_bytes_up": float64(rep.BytesUp), "body_bytes_down": float64(rep.BytesDown)}
	return &Result{Rows: []Row{row}, Notes: []string{
		fmt.Sprintf("link: %s one way ±%s jitter, %d kbit/s each way, simulated by an in-process TCP proxy",
			profile2G.Delay, profile2G.Jitter, profile2G.BitRate/1000),
	}}, nil
}
