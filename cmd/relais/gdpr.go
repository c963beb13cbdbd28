package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/server"
)

func init() {
	register("admin retention run", command{"anonymise beneficiaries not updated for a year (or --older-than)", runRetention})
	register("admin beneficiaire erase", command{"erase (anonymise) one beneficiary on every replica", runErase})
	register("device erase", command{"erase (anonymise) a beneficiary from this device; sent at the next sync", runDeviceErase})
}

func runDeviceErase(ctx context.Context, args []string, e *env) error {
	fs, path := deviceFlags("device erase", e)
	id := fs.String("id", "", "the beneficiary's id")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *id == "" {
		return usagef("--id is required")
	}
	r, err := openReplica(ctx, *path)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := domain.EraseOnDevice(ctx, r.DB(), *id); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Bénéficiaire %s anonymisé sur cet appareil ; l'effacement partira à la prochaine synchronisation.\n", *id)
	return nil
}

// openServer builds a server on the data directory without listening,
// for commands that write as the server (through the merge engine, so
// devices receive the writes at their next sync).
func openServer(ctx context.Context, data string) (*server.Server, error) {
	return server.New(ctx, server.Config{DataDir: data, Node: adminNode(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func runRetention(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin retention run", e)
	age := fs.Duration("older-than", server.DefaultRetention, "anonymise beneficiaries with no write for this long")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *age < time.Hour {
		return usagef("--older-than must be at least an hour, not %s", *age)
	}
	srv, err := openServer(ctx, *data)
	if err != nil {
		return err
	}
	defer srv.Close()
	n, err := srv.RunRetention(ctx, *age)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d bénéficiaire(s) sans mise à jour depuis %s anonymisé(s).\n", n, *age)
	return nil
}

func runErase(ctx context.Context, args []string, e *env) error {
	fs, data := adminFlags("admin beneficiaire erase", e)
	id := fs.String("id", "", "the beneficiary's id")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *id == "" {
		return usagef("--id is required")
	}
	srv, err := openServer(ctx, *data)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.EraseBeneficiaire(ctx, *id); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Bénéficiaire %s anonymisé : ses données personnelles disparaîtront de chaque appareil à sa prochaine synchronisation.\n", *id)
	return nil
}
