package server

import (
	"context"
	"fmt"

	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
)

// OpenPostgres opens the PostgreSQL database at url, shared by several
// servers, and brings it up to date: the merge's tables (version
// records, conflict log, the sequence counter), the domain tables and
// the server's own (accounts, devices, tokens, dashboard sessions, login
// failures, batch records, the history identity; issue 15).
func OpenPostgres(ctx context.Context, url string) (*store.DB, error) {
	db, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		return nil, err
	}
	if err := migrations.UpPostgres(ctx, db.W, migrations.Compat, migrations.Replica, migrations.Domain, migrations.Server); err != nil {
		db.Close()
		return nil, err
	}
	if _, err := replica.Init(ctx, db.W); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", db.Path, err)
	}
	if err := ensureHistory(ctx, db.W); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", db.Path, err)
	}
	return db, nil
}

// HistoryOf returns the history identity of an open database (what every
// exchange answer carries), for the admin commands and tests.
func HistoryOf(ctx context.Context, db *store.DB) (string, error) {
	h, err := readHistory(ctx, db.R)
	return h.id, err
}
