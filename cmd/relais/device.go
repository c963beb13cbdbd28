package main

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"text/tabwriter"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/fr"
	"github.com/relais-numerique/relais/syncproto"
)

// The device commands speak French: conseillères use them on the field to
// check what their tablet holds and whether it synced.
func deviceFlags(path string, e *env) (*flags, *string) {
	fs := newFlags(path, e)
	return fs, fs.text(setDB)
}

func runDeviceLogin(ctx context.Context, args []string, e *env) error {
	fs, db := deviceFlags("device login", e)
	srv := fs.text(setServer)
	email := fs.String("email", "", "adresse e-mail de votre compte")
	stdin := fs.Bool("password-stdin", false, "lire le mot de passe sur l'entrée standard (obligatoire)")
	name := fs.String("name", "", "nom de l'appareil, affiché au coordinateur et à l'administrateur (par exemple Tablette)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *email == "" || !*stdin {
		return usagef("--email et --password-stdin sont obligatoires")
	}
	if len(*name) > syncproto.MaxDeviceName {
		return usagef("--name : %d octets au plus", syncproto.MaxDeviceName)
	}
	if err := checkServerURL(*srv); err != nil {
		return err
	}
	pw, err := readSecret(e.stdin)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(*db)
	fresh := errors.Is(statErr, iofs.ErrNotExist)
	r, err := openReplica(ctx, *db, func(o *device.Options) { o.DeviceName = *name })
	if err != nil {
		return err
	}
	if err := r.Login(ctx, *srv, *email, pw); err != nil {
		r.Close()
		if fresh {
			// A failed first login leaves nothing behind: no replica
			// with a device id that was never enrolled.
			removeReplica(*db)
		}
		return explainExchange(err, -1)
	}
	if err := r.Close(); err != nil {
		return err
	}
	label := r.Node()
	if *name != "" {
		label = "« " + *name + " » (" + r.Node() + ")"
	}
	fmt.Fprintf(e.stdout, "Appareil %s connecté à %s en tant que %s.\n", label, *srv, *email)
	return nil
}

// removeReplica deletes a replica file and SQLite's companions.
func removeReplica(path string) {
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			continue // best effort: the login error is what matters
		}
	}
}

func runDeviceSync(ctx context.Context, args []string, e *env) error {
	fs, db := deviceFlags("device sync", e)
	if err := fs.parse(args); err != nil {
		return err
	}
	line := newProgress(e)
	return withReplica(ctx, *db, func(r *device.Replica) error {
		rep, err := r.Sync(ctx)
		line.done()
		fmt.Fprintf(e.stdout, "Envoyées : %s modification(s) · Reçues : %s · Conflits : %s · Refusées : %s · Échanges : %s · Octets envoyés/reçus : %s/%s\n",
			fr.Number(rep.Pushed), fr.Number(rep.Pulled), fr.Number(rep.Conflicts), fr.Number(rep.Rejected),
			fr.Number(rep.Exchanges), fr.Number(rep.BytesUp), fr.Number(rep.BytesDown))
		if err != nil {
			st, serr := r.Status(ctx)
			if serr != nil {
				return errors.Join(err, serr)
			}
			return explainExchange(err, st.Pending)
		}
		if rep.ServerRestored {
			fmt.Fprintln(e.stdout, "Le serveur a été restauré depuis une sauvegarde : vos saisies lui ont été renvoyées et l'appareil a repris ce qui a changé depuis cette sauvegarde.")
		}
		if rep.Rejected > 0 {
			fmt.Fprintf(e.stdout, "%s modification(s) refusée(s) par le serveur : à corriger ou abandonner avec « relais device rejected ».\n", fr.Number(rep.Rejected))
		}
		fmt.Fprintln(e.stdout, "Synchronisation terminée.")
		return nil
	}, func(o *device.Options) {
		o.Progress = syncLine(line)
		if e.retryFor > 0 {
			o.RetryFor = e.retryFor
		}
	})
}

func runDeviceStatus(ctx context.Context, args []string, e *env) error {
	fs, db := deviceFlags("device status", e)
	if err := fs.parse(args); err != nil {
		return err
	}
	return withReplica(ctx, *db, func(r *device.Replica) error {
		st, err := r.Status(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(w, "Appareil\t%s\n", st.Node)
		if st.Revoked {
			fmt.Fprintf(w, "État\tRÉVOQUÉ le %s : les données locales ont été effacées\n", fr.DateTime(st.RevokedAt))
		}
		fmt.Fprintf(w, "Serveur\t%s\n", orDash(st.Server))
		fmt.Fprintf(w, "Compte\t%s\n", orDash(st.Email))
		// Being enrolled says nothing of whether the server can be
		// reached now: the last sync and the last error say that.
		fmt.Fprintf(w, "Inscrit auprès du serveur\t%s\n", yesNo(st.LoggedIn))
		fmt.Fprintf(w, "Modifications en attente\t%s\n", fr.Number(st.Pending))
		if st.Rejected > 0 {
			fmt.Fprintf(w, "Modifications refusées par le serveur\t%s : à corriger ou abandonner avec « relais device rejected »\n", fr.Number(st.Rejected))
		} else {
			fmt.Fprintf(w, "Modifications refusées par le serveur\t0\n")
		}
		fmt.Fprintf(w, "Dernière synchronisation réussie\t%s\n", fr.DateTime(st.LastSync))
		fmt.Fprintf(w, "Curseur\t%s\n", fr.Number(st.Cursor))
		fmt.Fprintf(w, "Version du schéma\t%d\n", st.SchemaVers)
		if st.LastError != "" {
			fmt.Fprintf(w, "Dernière erreur\t%s\n", storedError(st.LastError, st.Pending))
		}
		return w.Flush()
	})
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "oui"
	}
	return "non"
}
