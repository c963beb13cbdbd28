package bench

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Scenario "weak": a day's work synced over a 2G link.

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
