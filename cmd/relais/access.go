package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/fr"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// Who sees what, from the administrator's side: devices, accounts,
// signing keys and coordinations. Every command works on the data
// directory directly, while the server runs (SQLite lets both write), and
// takes effect at the server's next request: revocation and disabling are
// read from the database on every request.

func runDeviceList(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin device list", e)
	email := fs.String("email", "", "seulement les appareils de ce compte")
	if err := fs.parse(args); err != nil {
		return err
	}
	return withAccounts(ctx, *data, func(acc *auth.Accounts) error {
		devs, err := acc.ListDevices(ctx, *email)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "APPAREIL\tNOM\tCOMPTE\tINSCRIT LE\tDERNIER CONTACT\tDERNIÈRE SYNCHRONISATION\tEN ATTENTE\tÉTAT")
		for _, d := range devs {
			state := "actif"
			if !d.RevokedAt.IsZero() {
				state = "révoqué le " + fr.DateTime(d.RevokedAt)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, orDash(d.Name), d.Email, fr.DateTime(d.CreatedAt), fr.DateTime(d.LastSeenAt),
				fr.DateTime(d.LastSyncAt), fr.Number(d.Pending), state)
		}
		return w.Flush()
	})
}

func runDeviceRevoke(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin device revoke", e)
	id := fs.String("id", "", "identifiant de l'appareil (voir relais admin device list)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *id == "" && fs.NArg() == 1 {
		*id = fs.Arg(0)
	}
	if *id == "" {
		return usagef("indiquez l'identifiant de l'appareil : --id ID (relais admin device list les affiche)")
	}
	return withAccounts(ctx, *data, func(acc *auth.Accounts) error {
		if err := acc.RevokeDevice(ctx, *id, "admin-cli", time.Now()); err != nil {
			if auth.IsNotFound(err) {
				return fmt.Errorf("aucun appareil %s : relais admin device list affiche les identifiants", *id)
			}
			return err
		}
		fmt.Fprintf(e.stdout, "Appareil %s révoqué : ses jetons sont refusés dès maintenant, et il efface ses données locales à son prochain contact (les saisies qu'il n'a pas envoyées sont perdues).\n", *id)
		return nil
	})
}

func runUserDisable(ctx context.Context, args []string, e *env) error {
	return setDisabled(ctx, "admin user disable", args, e, true)
}

func runUserEnable(ctx context.Context, args []string, e *env) error {
	return setDisabled(ctx, "admin user enable", args, e, false)
}

func setDisabled(ctx context.Context, path string, args []string, e *env, disabled bool) error {
	fs, data := adminFlags(path, e)
	email := fs.String("email", "", "adresse e-mail du compte")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *email == "" {
		return usagef("--email est obligatoire")
	}
	return withAccounts(ctx, *data, func(acc *auth.Accounts) error {
		u, err := acc.SetDisabled(ctx, *email, disabled, time.Now())
		if err != nil {
			if auth.IsNotFound(err) {
				return fmt.Errorf("aucun compte %s", *email)
			}
			return err
		}
		if disabled {
			fmt.Fprintf(e.stdout, "Compte %s désactivé : ses appareils sont refusés dès leur prochaine requête.\n", u.Email)
		} else {
			fmt.Fprintf(e.stdout, "Compte %s réactivé.\n", u.Email)
		}
		return nil
	})
}

func runKeysRotate(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin keys rotate", e)
	if err := fs.parse(args); err != nil {
		return err
	}
	return withDB(ctx, *data, func(db *store.DB) error {
		keys, err := auth.LoadKeys(ctx, db.W)
		if err != nil {
			return err
		}
		kid, err := keys.Rotate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Nouvelle clé de signature %s ; les jetons signés par la précédente restent valables jusqu'à leur expiration.\n", kid)
		return nil
	})
}

func runCoordinationAdd(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin coordination add", e)
	coord := fs.String("coordinateur", "", "adresse e-mail du coordinateur")
	med := fs.String("mediateur", "", "adresse e-mail du médiateur")
	from := fs.String("from", "", "premier jour suivi, AAAA-MM-JJ (par défaut : sans début)")
	to := fs.String("to", "", "dernier jour suivi, AAAA-MM-JJ (par défaut : sans fin)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *coord == "" || *med == "" {
		return usagef("--coordinateur et --mediateur sont obligatoires")
	}
	for _, d := range []string{*from, *to} {
		if _, err := time.Parse("2006-01-02", d); d != "" && err != nil {
			return usagef("« %s » n'est pas une date : écrivez AAAA-MM-JJ", d)
		}
	}
	if *from != "" && *to != "" && *to < *from {
		return usagef("--to (%s) est avant --from (%s)", *to, *from)
	}
	// The coordination is a synced row, written through the merge engine
	// as the server's own write, so devices receive it (and what it makes
	// visible) at their next pull.
	return withServer(ctx, *data, func(srv *server.Server) error {
		acc := &auth.Accounts{W: srv.DB().W, R: srv.DB().R}
		c, err := acc.UserByEmail(ctx, *coord)
		if err != nil {
			return accountError(*coord, err)
		}
		m, err := acc.UserByEmail(ctx, *med)
		if err != nil {
			return accountError(*med, err)
		}
		if c.Role != auth.RoleCoordinateur {
			return fmt.Errorf("%s a le rôle %s : seul un compte coordinateur suit une équipe", c.Email, c.Role)
		}
		id := uuid.Must(uuid.NewV7()).String()
		values := map[string]any{"coordinateur_id": c.ID, "mediateur_id": m.ID, "debut": nullIfEmpty(*from), "fin": nullIfEmpty(*to)}
		if err := srv.WriteRow(ctx, "coordination", id, values); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s suit désormais %s (coordination %s, %s).\n", c.Email, m.Email, id, period(*from, *to))
		return nil
	})
}

// accountError says an account is missing in French, or passes other
// errors on.
func accountError(email string, err error) error {
	if auth.IsNotFound(err) {
		return fmt.Errorf("aucun compte %s : relais admin user list affiche les comptes", email)
	}
	return fmt.Errorf("compte %s : %w", email, err)
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// period writes a coordination's dates: "du 2026-01-01 au 2026-12-31",
// "sans limite de dates".
func period(from, to string) string {
	switch {
	case from == "" && to == "":
		return "sans limite de dates"
	case to == "":
		return "à partir du " + from
	case from == "":
		return "jusqu'au " + to
	}
	return "du " + from + " au " + to
}

func runCoordinationList(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin coordination list", e)
	if err := fs.parse(args); err != nil {
		return err
	}
	return withDB(ctx, *data, func(db *store.DB) error {
		rows, err := db.R.QueryContext(ctx, `SELECT c.id, COALESCE(cu.email, c.coordinateur_id), COALESCE(mu.email, c.mediateur_id),
			COALESCE(c.debut, ''), COALESCE(c.fin, '')
			FROM coordination c LEFT JOIN _users cu ON cu.id = c.coordinateur_id LEFT JOIN _users mu ON mu.id = c.mediateur_id
			ORDER BY 2, 3, c.debut`)
		if err != nil {
			return fmt.Errorf("lecture des coordinations : %w", err)
		}
		defer rows.Close()
		w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "COORDINATEUR\tMÉDIATEUR\tPÉRIODE\tIDENTIFIANT")
		for rows.Next() {
			var id, coord, med, from, to string
			if err := rows.Scan(&id, &coord, &med, &from, &to); err != nil {
				return fmt.Errorf("lecture des coordinations : %w", err)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", coord, med, period(from, to), id)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("lecture des coordinations : %w", err)
		}
		return w.Flush()
	})
}

func runCoordinationRemove(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin coordination remove", e)
	id := fs.String("id", "", "identifiant de la coordination (voir relais admin coordination list)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *id == "" && fs.NArg() == 1 {
		*id = fs.Arg(0)
	}
	if *id == "" {
		return usagef("indiquez l'identifiant de la coordination : --id ID (relais admin coordination list les affiche)")
	}
	return withServer(ctx, *data, func(srv *server.Server) error {
		var n int
		if err := srv.DB().R.QueryRowContext(ctx, "SELECT COUNT(*) FROM coordination WHERE id = ?", *id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("aucune coordination %s : relais admin coordination list affiche les identifiants", *id)
		}
		// A deletion is a synced write like any other: devices drop the
		// row, and what it made visible, at their next sync.
		if err := srv.WriteRow(ctx, "coordination", *id, map[string]any{syncproto.DeletedColumn: int64(1)}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Coordination %s supprimée : le coordinateur ne reçoit plus les données de ce médiateur à partir de sa prochaine synchronisation.\n", *id)
		return nil
	})
}
