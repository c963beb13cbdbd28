package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/relais-numerique/relais/demo"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
)

// Scenarios "initial" and "growth": a fresh coordinator device pulls
// the département, at one size and at growing sizes.

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
