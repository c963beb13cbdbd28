package main

import (
	"context"
	"fmt"
	"net/mail"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

// adminFlags are the flags every admin command shares.
func adminFlags(path string, e *env) (*flags, *string) {
	fs := newFlags(path, e)
	return fs, fs.text(setData)
}

// adminNode is the node id under which one admin run writes: its own, so
// that its versions can never equal the running server's (see
// server.Config.Node).
func adminNode() string { return "admin-" + uuid.NewString() }

func runUserAdd(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin user add", e)
	email := fs.String("email", "", "adresse e-mail du compte")
	role := fs.String("role", auth.RoleConseiller, "conseiller, coordinateur ou admin")
	stdin := fs.Bool("password-stdin", false, "lire le mot de passe sur l'entrée standard (obligatoire)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *email == "" || !*stdin {
		return usagef("--email et --password-stdin sont obligatoires")
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
	db, err := server.OpenDB(ctx, *data)
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
	fmt.Fprintf(e.stdout, "Compte %s créé : %s (identifiant %s).\n", u.Email, u.Role, u.ID)
	return nil
}
