package bench

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store"
)

// Scenario "ingest": a device pushes N activities, against inserting
// the same rows into SQLite directly (the floor).

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
