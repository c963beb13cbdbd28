package bench

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// Scenario "month": a device back from a month away, while every
// activity cell was rewritten elsewhere, syncs again.

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
		return seed(ctx, db, append(slices.Clone(ds.Structures), ds.Activites...))
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
