package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

func init() {
	register("admin user add", command{"create an account (password on stdin)", runUserAdd})
}

// adminFlags are the flags every admin command shares.
func adminFlags(name string, e *env) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	data := fs.String("data", envOr(e, "RELAIS_DATA", "./relais-data"), "server data directory (env RELAIS_DATA)")
	return fs, data
}

// adminNode is the node id under which one admin run writes: its own, so
// that its versions can never equal the running server's (see
// server.Config.Node).
func adminNode() string { return "admin-" + uuid.NewString() }

// openAccounts opens the server database; SQLite lets the admin commands
// write while the server runs.
func openAccounts(ctx context.Context, data string) (*auth.Accounts, func(), error) {
	db, err := server.OpenDB(ctx, data)
	if err != nil {
		return nil, nil, err
	}
	return &auth.Accounts{W: db.W, R: db.R}, func() { db.Close() }, nil
}

func runUserAdd(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin user add", e)
	email := fs.String("email", "", "the account's e-mail address")
	role := fs.String("role", "conseiller", "conseiller, coordinateur or admin")
	stdin := fs.Bool("password-stdin", false, "read the password from stdin (required)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *email == "" || !*stdin {
		return usagef("--email and --password-stdin are required")
	}
	pw, err := readSecret(e.stdin)
	if err != nil {
		return err
	}
	acc, done, err := openAccounts(ctx, *data)
	if err != nil {
		return err
	}
	defer done()
	u, err := acc.AddUser(ctx, *email, *role, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created %s %s (id %s)\n", u.Role, u.Email, u.ID)
	return nil
}
