package server

import (
	"context"
	"fmt"

	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
)

// OpenPostgres opens the PostgreSQL database at url, shared by several
// servers, and brings the domain tables and the server's own tables up
// to date: accounts, devices, tokens, dashboard sessions, login
// failures, batch records and the history identity (issue 15). The merge's tables come with the
// row-version layout (issue 13); until then server.New runs on SQLite
// only.
func OpenPostgres(ctx context.Context, url string) (*store.DB, error) {
	db, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		return nil, err
	}
	if err := migrations.UpPostgres(ctx, db.W, migrations.Compat, migrations.Domain, migrations.Server); err != nil {
		db.Close()
		return nil, err
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
