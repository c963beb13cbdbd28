package main

import (
	"context"
	"fmt"
	"net/mail"
	"text/tabwriter"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/fr"
	"github.com/relais-numerique/relais/server/auth"
)

// adminFlags are the flags every admin command shares: where the
// server's data is.
func adminFlags(path string, e *env) (*flags, *place) {
	fs := newFlags(path, e)
	return fs, &place{data: fs.text(setData), store: fs.text(setStore)}
}

// adminNode is the node id under which one admin run writes: its own, so
// that its versions can never equal the running server's (see
// server.Config.Node).
func adminNode() string { return "admin-" + uuid.NewString() }

func runUserAdd(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin user add", e)
	email := fs.String("email", "", "adresse e-mail du compte")
	role := fs.String("role", auth.RoleConseiller, "conseiller, coordinateur ou admin")
	name := fs.String("name", "", "prénom et nom, affichés à la place de l'e-mail (statistiques, flotte, conflits)")
	stdin := fs.Bool("password-stdin", false, "lire le mot de passe sur l'entrée standard (obligatoire)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *email == "" || !*stdin {
		return usagef("--email et --password-stdin sont obligatoires")
	}
	if !auth.ValidName(*name) {
		return usagef("--name : du texte de %d octets au plus", auth.MaxNameBytes)
	}
	if !auth.ValidRole(*role) {
		return usagef("rôle « %s » inconnu : conseiller, coordinateur ou admin", *role)
	}
	if a, err := mail.ParseAddress(*email); err != nil || a.Address != *email {
		return usagef("« %s » n'est pas une adresse e-mail", *email)
	}
	pw, err := readSecret(e.stdin)
	if err != nil {
		return err
	}
	if len(pw) < 8 || len(pw) > 72 {
		return usagef("le mot de passe doit compter de 8 à 72 caractères (il en a %d)", len(pw))
	}
	// Adding the first account is how a data directory starts, so this
	// command, unlike the others, may create the database.
	db, err := data.create(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	acc := &auth.Accounts{W: db.W, R: db.R}
	if _, err := acc.UserByEmail(ctx, *email); err == nil {
		return fmt.Errorf("un compte %s existe déjà", *email)
	}
	u, err := acc.AddUser(ctx, *email, *role, pw)
	if err != nil {
		return err
	}
	if *name != "" {
		if err := acc.SetName(ctx, u.Email, *name); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "Compte %s créé : %s (identifiant %s).\n", u.Email, u.Role, u.ID)
	return nil
}

func runUserList(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin user list", e)
	if err := fs.parse(args); err != nil {
		return err
	}
	return withAccounts(ctx, *data, func(acc *auth.Accounts) error {
		users, err := acc.ListUsers(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "E-MAIL\tNOM\tRÔLE\tCRÉÉ LE\tAPPAREILS ACTIFS\tÉTAT\tIDENTIFIANT")
		for _, u := range users {
			state := "actif"
			if u.Disabled {
				state = "désactivé"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Email, orDash(u.Name), u.Role, fr.DateTime(u.CreatedAt), fr.Number(u.Devices), state, u.ID)
		}
		return w.Flush()
	})
}

func runUserPassword(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin user password", e)
	email := fs.String("email", "", "adresse e-mail du compte")
	stdin := fs.Bool("password-stdin", false, "lire le nouveau mot de passe sur l'entrée standard (obligatoire)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *email == "" || !*stdin {
		return usagef("--email et --password-stdin sont obligatoires")
	}
	pw, err := readSecret(e.stdin)
	if err != nil {
		return err
	}
	if len(pw) < 8 || len(pw) > 72 {
		return usagef("le mot de passe doit compter de 8 à 72 caractères (il en a %d)", len(pw))
	}
	return withAccounts(ctx, *data, func(acc *auth.Accounts) error {
		if err := acc.SetPassword(ctx, *email, pw); err != nil {
			return accountError(*email, err)
		}
		fmt.Fprintf(e.stdout, "Mot de passe de %s changé. Les appareils déjà connectés le restent ; « relais admin device revoke » arrête un appareil.\n", *email)
		return nil
	})
}
