package replica_test

import (
	"context"
	"github.com/relais-numerique/relais/store"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/demo"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// benchPageCells is the size of the pages BenchmarkApply merges: the
// SDK's first page size before it grows.
const benchPageCells = 2000

var (
	demoOnce  sync.Once
	demoCells []syncproto.Change
	demoErr   error
)

// demoPages returns the cells of a small demo département (what a
// coordinator pulls: activities, beneficiaries, appointments, structures)
// in sequence order, read once per test binary.
func demoPages(b *testing.B) []syncproto.Change {
	demoOnce.Do(func() {
		ctx := context.Background()
		// The database is only read here, so the directory of the
		// benchmark that comes first may hold it.
		db, err := server.OpenDB(ctx, b.TempDir())
		if err != nil {
			demoErr = err
			return
		}
		defer db.Close()
		if _, err := demo.Generate(ctx, db, demo.Options{Seed: 7, Activities: 1500}); err != nil {
			demoErr = err
			return
		}
		page, err := replica.ReadPage(ctx, db.R, schemaOf(b, db), 0, 1<<30, nil)
		demoCells, demoErr = page.Changes, err
	})
	if demoErr != nil {
		b.Fatal(demoErr)
	}
	return demoCells
}

// benchDevice opens a device replica (capture and rule triggers
// installed) with the merge's statements kept prepared, as the SDK has.
func benchDevice(b *testing.B) (*device.Replica, *replica.Prepared) {
	b.Helper()
	ctx := context.Background()
	r, err := device.Open(ctx, filepath.Join(b.TempDir(), "device.db"), device.Options{})
	if err != nil {
		b.Fatal(err)
	}
	pre := replica.NewPrepared(r.DB())
	if err := pre.Warm(ctx, r.Schema()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		pre.Close()
		r.Close()
	})
	return r, pre
}

// applyTimed applies one page the way the SDK does (triggers silenced,
// one transaction) and times only replica.Apply: the commit is an fsync
// whose duration says more about the disk than about the merge.
func applyTimed(b *testing.B, r *device.Replica, pre *replica.Prepared, page []syncproto.Change) {
	b.Helper()
	ctx := context.Background()
	b.StopTimer()
	tx, err := r.DB().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, "UPDATE _replica SET applying = 1 WHERE id = 1"); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	before := cpuTime()
	res, err := replica.Apply(ctx, tx, r.Schema(), page, replica.Options{Prepared: pre})
	applyCPU += cpuTime() - before
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Won == 0 {
		b.Fatalf("nothing won: %+v", res)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE _replica SET applying = 0 WHERE id = 1"); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	// As the SDK does after each page.
	if err := pre.Learn(ctx); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
}

// BenchmarkApply merges pages of 2,000 pulled cells into a device
// replica: new rows (an initial sync), then the same cells again with
// newer versions (rows the device holds, every column rewritten). Run:
//
//	go test -run '^$' -bench BenchmarkApply -count 6 ./replica/
func BenchmarkApply(b *testing.B) {
	cells := demoPages(b)
	pages := len(cells) / benchPageCells
	if pages == 0 {
		b.Fatalf("only %d demo cells", len(cells))
	}
	page := func(i int) []syncproto.Change {
		return cells[i*benchPageCells : (i+1)*benchPageCells]
	}

	b.Run("new rows", func(b *testing.B) {
		r, pre := benchDevice(b)
		applyCPU = 0
		i := 0
		for b.Loop() {
			if i == pages {
				// Every demo row is held now: start again on a fresh replica.
				b.StopTimer()
				r, pre = benchDevice(b)
				i = 0
				b.StartTimer()
			}
			applyTimed(b, r, pre, page(i))
			i++
		}
		reportPerCell(b)
	})

	b.Run("updates", func(b *testing.B) {
		r, pre := benchDevice(b)
		for i := range pages {
			applyTimed(b, r, pre, page(i))
		}
		b.ResetTimer()
		applyCPU = 0
		round, i := 0, 0
		next := make([]syncproto.Change, benchPageCells)
		for b.Loop() {
			if i == pages {
				round, i = round+1, 0
			}
			b.StopTimer()
			// Newer versions of the same cells, whose prev is the
			// version held: plain successive edits.
			for j, c := range page(i) {
				c.Prev = c.Version
				c.Prev.HLC += syncproto.Timestamp(round)
				c.Version.HLC += syncproto.Timestamp(round + 1)
				next[j] = c
			}
			b.StartTimer()
			applyTimed(b, r, pre, next)
			i++
		}
		reportPerCell(b)
	})
}

// applyCPU is the CPU time the process spent in replica.Apply during the
// running benchmark. On a machine shared with other work, wall time says
// as much about the neighbours as about the merge; this does not.
var applyCPU time.Duration

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportPerCell reports wall and CPU time per merged cell.
func reportPerCell(b *testing.B) {
	cells := float64(b.N * benchPageCells)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/cells, "ns/cell")
	b.ReportMetric(float64(applyCPU.Nanoseconds())/cells, "cpu-ns/cell")
}

func schemaOf(tb testing.TB, db *store.DB) *syncproto.Schema {
	tb.Helper()
	s, err := replica.LoadSchema(context.Background(), db.R)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
