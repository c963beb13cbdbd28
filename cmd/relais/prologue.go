package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
)

// The open-and-close prologues of the commands. Commands that only read
// or change existing data refuse a missing database instead of creating
// an empty one: a typo in --data or --db must not look like data loss.

// needServerDB fails unless data holds a server database.
func needServerDB(data string) error {
	if _, err := os.Stat(server.DBPath(data)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("aucune base Relais dans « %s » : vérifiez --data (ou RELAIS_DATA)", data)
		}
		return fmt.Errorf("répertoire de données « %s » illisible : %w", data, err)
	}
	return nil
}

// place is where a command finds the server's data: the SQLite database
// of a data directory (--data), or a PostgreSQL database shared by
// several servers (--store).
type place struct{ data, store *string }

// postgres says whether the data is on PostgreSQL; a --store that is not
// a PostgreSQL address is refused rather than taken for a directory.
func (p place) postgres() (bool, error) {
	switch {
	case *p.store == "":
		return false, nil
	case pgstore.IsPostgresURL(*p.store):
		return true, nil
	}
	return false, usagef("--store (ou RELAIS_STORE) : une adresse postgres://UTILISATEUR@HOTE/BASE est attendue, pas « %s »", *p.store)
}

// create opens the server database, creating it if needed.
func (p place) create(ctx context.Context) (*store.DB, error) {
	pg, err := p.postgres()
	if err != nil {
		return nil, err
	}
	if pg {
		return server.OpenPostgres(ctx, *p.store)
	}
	return server.OpenDB(ctx, *p.data)
}

// withDB runs fn on the server database of an existing data directory,
// or on the PostgreSQL database of --store.
func withDB(ctx context.Context, data place, fn func(db *store.DB) error) error {
	pg, err := data.postgres()
	if err != nil {
		return err
	}
	if !pg {
		if err := needServerDB(*data.data); err != nil {
			return err
		}
	}
	db, err := data.create(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db)
}

// withAccounts runs fn on the accounts of an existing data directory.
func withAccounts(ctx context.Context, data place, fn func(acc *auth.Accounts) error) error {
	return withDB(ctx, data, func(db *store.DB) error {
		return fn(&auth.Accounts{W: db.W, R: db.R})
	})
}

// withServer runs fn on a server built on an existing data directory,
// without listening, for commands that write as the server (through the
// merge engine, so devices receive the writes at their next sync). It
// writes under a node of its own (see server.Config.Node).
func withServer(ctx context.Context, data place, fn func(srv *server.Server) error) error {
	pg, err := data.postgres()
	if err != nil {
		return err
	}
	cfg := server.Config{DataDir: *data.data, Node: adminNode(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if pg {
		// Beside the running servers, as one more of them: its writes
		// draw their numbers and take their locks as theirs do.
		cfg.Store = *data.store
	} else if err := needServerDB(*data.data); err != nil {
		return err
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	return fn(srv)
}

// needReplica fails unless path holds a device's replica.
func needReplica(path string) error {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("aucun appareil dans le fichier « %s » : vérifiez --db (ou RELAIS_DB), ou inscrivez l'appareil avec « relais device login »", path)
		}
		return fmt.Errorf("fichier « %s » illisible : %w", path, err)
	}
	return nil
}

// cliRetryFor is how long the command line retries an unreachable
// server: long enough for a server restart or a weak link, short enough
// that a person is not left waiting on a server that is down.
const cliRetryFor = 15 * time.Second

func openReplica(ctx context.Context, path string, opts ...func(*device.Options)) (*device.Replica, error) {
	o := device.Options{RetryFor: cliRetryFor, AppVersion: "relais-cli", SQLFunctions: device.UUIDFunction}
	for _, f := range opts {
		f(&o)
	}
	return device.Open(ctx, path, o)
}

// withReplica runs fn on an existing replica.
func withReplica(ctx context.Context, path string, fn func(r *device.Replica) error, opts ...func(*device.Options)) error {
	if err := needReplica(path); err != nil {
		return err
	}
	r, err := openReplica(ctx, path, opts...)
	if err != nil {
		return err
	}
	defer r.Close()
	return fn(r)
}
