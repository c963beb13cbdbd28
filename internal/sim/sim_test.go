package sim

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/pgtest"
)

// Environment variables that turn the CI budget into a campaign or a
// replay:
//
//	RELAIS_SIM_SCHEDULES=100000   how many schedules (default ciSchedules)
//	RELAIS_SIM_SEED=42            the first seed (default 1); schedule i uses seed+i
//	RELAIS_SIM_DIR=/dev/shm/x     where the files go (default: tmpfs when present)
//	RELAIS_SIM_TRACE=1            print each schedule's steps (for a replay)
//	RELAIS_SIM_FOR=90m            stop starting schedules after this long
//	RELAIS_SIM_PROGRESS=1         print a progress line every 100 schedules
//	RELAIS_SIM_SERVERS=2          two servers on one database
//	RELAIS_SIM_STORE=postgres     the servers' database on PostgreSQL (internal/pgtest), not SQLite
const ciSchedules = 250

// ciPostgresSchedules is TestSimulationOnPostgres's budget: two servers
// on one PostgreSQL database cost a database copy per schedule and a
// round trip per statement.
const ciPostgresSchedules = 24

func TestMain(m *testing.M) { pgtest.Main(m) }

func envInt(t *testing.T, name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// simDir prefers tmpfs: the fsyncs that synchronous=FULL asks for are real
// calls either way, but on tmpfs they cost nothing and the budget buys
// more schedules. Crash tests, which need real durability, use the disk.
func simDir(t *testing.T) string {
	if d := os.Getenv("RELAIS_SIM_DIR"); d != "" {
		return d
	}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "relais-sim-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// TestSimulation plays many seeded schedules of writes, syncs, faults and
// restarts, and checks after each that the replicas converged and no
// acknowledged write was lost. A failure prints the seed and the command
// that replays it with a step-by-step trace.
//
// RELAIS_SIM_SERVERS=2 plays the schedules with two servers on one
// database (Config.Servers), RELAIS_SIM_STORE=postgres on PostgreSQL;
// TestSimulationOnPostgres is that mode's share of the CI budget.
func TestSimulation(t *testing.T) {
	store := os.Getenv("RELAIS_SIM_STORE")
	if store != "" && store != "postgres" {
		t.Fatalf("RELAIS_SIM_STORE=%q: postgres or nothing (SQLite)", store)
	}
	simulate(t, int(envInt(t, "RELAIS_SIM_SERVERS", 1)), store == "postgres", envInt(t, "RELAIS_SIM_SCHEDULES", ciSchedules))
}

// TestSimulationOnPostgres plays a few schedules with two servers on one
// PostgreSQL database (issue 15): exchanges reach either at random, lost
// and replayed answers land on the other, one restarts while the other
// serves. RELAIS_SIM_STORE=postgres RELAIS_SIM_SERVERS=2 with
// TestSimulation is the campaign.
func TestSimulationOnPostgres(t *testing.T) {
	simulate(t, 2, true, envInt(t, "RELAIS_SIM_SCHEDULES", ciPostgresSchedules))
}

func simulate(t *testing.T, servers int, onPostgres bool, n uint64) {
	ctx := context.Background()
	first := envInt(t, "RELAIS_SIM_SEED", 1)
	trace := os.Getenv("RELAIS_SIM_TRACE") != ""
	dir := simDir(t)
	storeURL := ""
	if onPostgres {
		storeURL = pgtest.DB(t)
	}
	tpl, err := NewTemplateOn(ctx, filepath.Join(dir, "template"), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	replay := fmt.Sprintf("RELAIS_SIM_SERVERS=%d", servers)
	if onPostgres {
		replay += " RELAIS_SIM_STORE=postgres"
	}
	var deadline time.Time
	if v := os.Getenv("RELAIS_SIM_FOR"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RELAIS_SIM_FOR=%q: %v", v, err)
		}
		deadline = time.Now().Add(d)
	}
	progress := os.Getenv("RELAIS_SIM_PROGRESS") != ""
	workers := max(1, runtime.GOMAXPROCS(0))
	var next atomic.Uint64
	var mu sync.Mutex
	var failed []uint64
	totals := Result{Faults: map[string]int{}, Refusals: map[string]int{}}
	start := time.Now()
	var wg sync.WaitGroup
	for wk := 0; wk < workers; wk++ {
		wg.Add(1)
		go func(wk int) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				mu.Lock()
				stop := len(failed) >= 3 || (!deadline.IsZero() && time.Now().After(deadline))
				mu.Unlock()
				if stop {
					return
				}
				seed := first + i
				var buf bytes.Buffer
				cfg := Config{Seed: seed, Template: tpl, Dir: filepath.Join(dir, fmt.Sprintf("w%d", wk)), Servers: servers}
				if trace {
					cfg.Trace = &buf
				}
				res, err := Run(ctx, cfg)
				mu.Lock()
				if trace {
					t.Logf("trace of seed %d:\n%s", seed, buf.String())
				}
				switch {
				case err != nil:
					failed = append(failed, seed)
					t.Errorf("seed %d: %v\nreplay: RELAIS_SIM_SEED=%d RELAIS_SIM_SCHEDULES=1 %s RELAIS_SIM_TRACE=1 go test -run 'TestSimulation$' ./internal/sim", seed, err, seed, replay)
				case res.Failed():
					failed = append(failed, seed)
					t.Errorf("seed %d broke %d invariants:\n  %s\nreplay: RELAIS_SIM_SEED=%d RELAIS_SIM_SCHEDULES=1 %s RELAIS_SIM_TRACE=1 go test -run 'TestSimulation$' ./internal/sim",
						seed, len(res.Violations), joinLines(res.Violations), seed, replay)
				default:
					totals.Steps += res.Steps
					totals.Exchanges += res.Exchanges
					totals.Writes += res.Writes
					totals.Restarts += res.Restarts
					totals.ServerUps += res.ServerUps
					totals.BySecond += res.BySecond
					totals.Batches += res.Batches
					totals.Conflicts += res.Conflicts
					totals.Rejected += res.Rejected
					totals.Erasures += res.Erasures
					totals.Seed++
					if progress && totals.Seed%100 == 0 {
						fmt.Fprintf(os.Stderr, "%s: %d schedules passed, last seed %d, %d failed\n",
							time.Now().UTC().Format(time.TimeOnly), totals.Seed, seed, len(failed))
					}
					for k, v := range res.Faults {
						totals.Faults[k] += v
					}
					for k, v := range res.Refusals {
						totals.Refusals[k] += v
					}
				}
				mu.Unlock()
			}
		}(wk)
	}
	wg.Wait()
	if servers == 2 && totals.Seed > 0 && (totals.BySecond == 0 || totals.BySecond == totals.Exchanges) {
		t.Errorf("the second server answered %d of %d exchanges: the two-server mode is not at work", totals.BySecond, totals.Exchanges)
	}
	t.Logf("%d schedules passed (seeds %d..%d) in %s on %d workers: %d steps, %d writes, %d exchanges, %d batches acknowledged, %d conflicts logged, %d changes refused by rules, %d erasures, %d device restarts, %d server restarts, %d exchanges answered by a second server; faults %v; refusals %v",
		totals.Seed, first, first+n-1, time.Since(start).Round(time.Second), workers, totals.Steps, totals.Writes, totals.Exchanges,
		totals.Batches, totals.Conflicts, totals.Rejected, totals.Erasures, totals.Restarts, totals.ServerUps, totals.BySecond, totals.Faults, totals.Refusals)
}

func joinLines(s []string) string {
	var b bytes.Buffer
	for i, l := range s {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(l)
	}
	return b.String()
}
