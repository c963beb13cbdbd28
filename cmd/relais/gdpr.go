package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/fr"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

func runDeviceErase(ctx context.Context, args []string, e *env) error {
	fs, path := deviceFlags("device erase", e)
	id := fs.String("id", "", "identifiant du bénéficiaire")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *id == "" {
		return usagef("--id est obligatoire : l'identifiant du bénéficiaire à effacer")
	}
	return withReplica(ctx, *path, func(r *device.Replica) error {
		var n int
		if err := r.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM beneficiaire WHERE id = ?", *id).Scan(&n); err != nil && err != sql.ErrNoRows {
			return err
		}
		if n == 0 {
			return fmt.Errorf("aucun bénéficiaire %s sur cet appareil", *id)
		}
		if err := r.Erase(ctx, *id); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Bénéficiaire %s anonymisé sur cet appareil ; l'effacement partira à la prochaine synchronisation.\n", *id)
		return nil
	})
}

func runRetention(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin retention run", e)
	age := fs.Duration("older-than", server.DefaultRetention, "anonymiser les bénéficiaires sans mise à jour depuis cette durée")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *age < time.Hour {
		return usagef("--older-than doit valoir au moins une heure, pas %s", *age)
	}
	return withServer(ctx, *data, func(srv *server.Server) error {
		n, err := srv.RunRetention(ctx, *age)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s bénéficiaire(s) sans mise à jour depuis %s anonymisé(s).\n", fr.Number(n), fr.Duration(*age))
		return nil
	})
}

func runErase(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin beneficiaire erase", e)
	id := fs.String("id", "", "identifiant du bénéficiaire")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *id == "" {
		return usagef("--id est obligatoire : l'identifiant du bénéficiaire à effacer")
	}
	return withServer(ctx, *data, func(srv *server.Server) error {
		if err := srv.EraseBeneficiaire(ctx, *id); err != nil {
			if auth.IsNotFound(err) {
				return fmt.Errorf("aucun bénéficiaire %s sur le serveur", *id)
			}
			return err
		}
		fmt.Fprintf(e.stdout, "Bénéficiaire %s anonymisé : ses données personnelles disparaîtront de chaque appareil à sa prochaine synchronisation.\n", *id)
		return nil
	})
}
