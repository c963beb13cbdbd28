package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
)

// Scenario "fleet": at 17:00, N devices push a day's work and pull,
// many at a time.

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
		return seed(ctx, db, structures)
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
	if row.Extra == nil {
		row.Extra = map[string]float64{}
	}
	row.Extra["devices"], row.Extra["concurrency"], row.Extra["cells_pushed"] = float64(n), float64(conc), float64(pushed)
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
