package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

// Who sees what, from the administrator's side: devices, accounts,
// signing keys and coordinations. Every command works on the data
// directory directly, while the server runs (SQLite lets both write), and
// takes effect at the server's next request: revocation and disabling are
// read from the database on every request.
func init() {
	register("admin device list", command{"list enrolled devices, of one account with --email", runDeviceList})
	register("admin device revoke", command{"revoke a device: its tokens stop at once, it is wiped at next contact", runDeviceRevoke})
	register("admin user disable", command{"disable an account: its devices stop syncing", runUserDisable})
	register("admin user enable", command{"enable a disabled account again", runUserEnable})
	register("admin keys rotate", command{"sign new tokens with a new key (the old one verifies until its tokens expire)", runKeysRotate})
	register("admin coordination add", command{"make a coordinator follow a médiateur, optionally between dates", runCoordinationAdd})
}

func runDeviceList(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin device list", e)
	email := fs.String("email", "", "only this account's devices")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	acc, done, err := openAccounts(ctx, *data)
	if err != nil {
		return err
	}
	defer done()
	devs, err := acc.ListDevices(ctx, *email)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tACCOUNT\tENROLLED\tLAST SEEN\tLAST SYNC\tPENDING\tSTATE")
	for _, d := range devs {
		state := "active"
		if !d.RevokedAt.IsZero() {
			state = "revoked " + stamp(d.RevokedAt)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Email, stamp(d.CreatedAt), stamp(d.LastSeenAt), stamp(d.LastSyncAt), d.Pending, state)
	}
	return w.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func runDeviceRevoke(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin device revoke", e)
	id := fs.String("id", "", "the device's id (see admin device list)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *id == "" && fs.NArg() == 1 {
		*id = fs.Arg(0)
	}
	if *id == "" {
		return usagef("give the device's id: --id ID")
	}
	acc, done, err := openAccounts(ctx, *data)
	if err != nil {
		return err
	}
	defer done()
	if err := acc.RevokeDevice(ctx, *id, "admin-cli", time.Now()); err != nil {
		if auth.IsNotFound(err) {
			return fmt.Errorf("no device %s", *id)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "revoked device %s: its tokens are refused from now on, and it erases its local data at its next contact (unsynced changes on it are lost)\n", *id)
	return nil
}

func runUserDisable(ctx context.Context, args []string, e *env) error {
	return setDisabled(ctx, "admin user disable", args, e, true)
}

func runUserEnable(ctx context.Context, args []string, e *env) error {
	return setDisabled(ctx, "admin user enable", args, e, false)
}

func setDisabled(ctx context.Context, name string, args []string, e *env, disabled bool) error {
	fs, data := adminFlags(name, e)
	email := fs.String("email", "", "the account's e-mail address")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *email == "" {
		return usagef("--email is required")
	}
	acc, done, err := openAccounts(ctx, *data)
	if err != nil {
		return err
	}
	defer done()
	u, err := acc.SetDisabled(ctx, *email, disabled, time.Now())
	if err != nil {
		if auth.IsNotFound(err) {
			return fmt.Errorf("no account %s", *email)
		}
		return err
	}
	if disabled {
		fmt.Fprintf(e.stdout, "disabled %s: its devices are refused from their next request\n", u.Email)
	} else {
		fmt.Fprintf(e.stdout, "enabled %s again\n", u.Email)
	}
	return nil
}

func runKeysRotate(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin keys rotate", e)
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	db, err := server.OpenDB(ctx, *data)
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := auth.LoadKeys(ctx, db.W)
	if err != nil {
		return err
	}
	kid, err := keys.Rotate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "new signing key %s; tokens signed by the previous key stay valid until they expire\n", kid)
	return nil
}

func runCoordinationAdd(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin coordination add", e)
	coord := fs.String("coordinateur", "", "the coordinator's e-mail address")
	med := fs.String("mediateur", "", "the médiateur's e-mail address")
	from := fs.String("from", "", "first day followed, YYYY-MM-DD (default: no start)")
	to := fs.String("to", "", "last day followed, YYYY-MM-DD (default: no end)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *coord == "" || *med == "" {
		return usagef("--coordinateur and --mediateur are required")
	}
	for _, d := range []string{*from, *to} {
		if _, err := time.Parse("2006-01-02", d); d != "" && err != nil {
			return usagef("%q is not a date: use YYYY-MM-DD", d)
		}
	}
	if *from != "" && *to != "" && *to < *from {
		return usagef("--to (%s) is before --from (%s)", *to, *from)
	}
	// The coordination is a synced row, written through the merge engine
	// as the server's own write, so devices receive it (and what it makes
	// visible) at their next pull.
	srv, err := server.New(ctx, server.Config{DataDir: *data, Node: adminNode(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer srv.Close()
	acc := &auth.Accounts{W: srv.DB().W, R: srv.DB().R}
	c, err := acc.UserByEmail(ctx, *coord)
	if err != nil {
		return fmt.Errorf("coordinator %s: %w", *coord, err)
	}
	m, err := acc.UserByEmail(ctx, *med)
	if err != nil {
		return fmt.Errorf("médiateur %s: %w", *med, err)
	}
	if c.Role != auth.RoleCoordinateur {
		return fmt.Errorf("%s has role %s; only a coordinateur account follows a team", c.Email, c.Role)
	}
	id := uuid.Must(uuid.NewV7()).String()
	values := map[string]any{"coordinateur_id": c.ID, "mediateur_id": m.ID, "debut": nullIfEmpty(*from), "fin": nullIfEmpty(*to)}
	if err := srv.WriteRow(ctx, "coordination", id, values); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s now coordinates %s (coordination %s, %s to %s)\n", c.Email, m.Email, id, orOpen(*from), orOpen(*to))
	return nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func orOpen(s string) string {
	if s == "" {
		return "open"
	}
	return s
}
