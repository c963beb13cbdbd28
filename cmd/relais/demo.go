package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/relais-numerique/relais/demo"
	"github.com/relais-numerique/relais/internal/fr"
	"github.com/relais-numerique/relais/server"
)

func runDemo(ctx context.Context, args []string, e *env) error {
	fs := newFlags("demo", e)
	data := fs.text(setData)
	storeURL := fs.text(setStore)
	retention := fs.duration(setRetention)
	dep := fs.String("departement", "53", "département décrit (seul 53, la Mayenne, existe)")
	seed := fs.Uint64("seed", 1, "graine : même graine, même taille et même fin donnent les mêmes données")
	size := fs.Int("size", demo.DefaultActivities, "nombre d'activités visé sur les deux ans")
	force := fs.Bool("force", false, "écrire même dans un répertoire qui a déjà d'autres comptes (ils côtoieront des comptes au mot de passe public)")
	// The two years end today by default, so the demo looks current and
	// the retention job finds what it would find on a live server.
	today := time.Now().In(fr.Paris)
	until := fs.String("until", today.AddDate(0, 0, 1).Format(time.DateOnly), "fin des deux ans (AAAA-MM-JJ, exclue ; par défaut demain, pour finir aujourd'hui)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("argument inattendu « %s »", fs.Arg(0))
	}
	end, err := time.Parse(time.DateOnly, *until)
	if err != nil {
		return usagef("--until : « %s » n'est pas une date AAAA-MM-JJ", *until)
	}
	if *size <= 0 {
		return usagef("--size doit être un nombre d'activités positif")
	}
	line := newProgress(e)
	progress := func(done, total, activities int) {
		line.show(false, "Génération : conseiller %d sur %d · %s activités · %s", done+1, total, fr.Number(activities), fr.Duration(line.elapsed().Round(time.Second)))
	}
	if line == nil {
		progress = nil
	}
	where := place{data: data, store: storeURL}
	pg, err := where.postgres()
	if err != nil {
		return err
	}
	db, err := where.create(ctx)
	if err != nil {
		return err
	}
	sum, err := demo.GenerateStore(ctx, db, demo.Options{Departement: *dep, Seed: *seed, Activities: *size, Until: end, Accounts: true, Force: *force, Progress: progress})
	line.done()
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("fermer la base : %w", cerr)
	}
	if err != nil {
		return err
	}
	// The server runs the retention job at start-up: run it now, so that
	// starting the server does not change the demo it shows.
	anonymised := 0
	if *retention > 0 {
		line.show(true, "Rétention : anonymisation des bénéficiaires sans mise à jour depuis %s…", fr.Duration(*retention))
		err := withServer(ctx, where, func(srv *server.Server) error {
			var err error
			anonymised, err = srv.RunRetention(ctx, *retention)
			return err
		})
		line.done()
		if err != nil {
			return err
		}
	}
	// Where the data went, as the coordinator will look for it: the
	// directory and its size on disk, or the PostgreSQL database.
	into, ondisk := *data, ""
	if pg {
		into, ondisk = db.Path, "base PostgreSQL partagée"
	} else {
		n, err := dirSize(*data)
		if err != nil {
			return err
		}
		ondisk = "répertoire de données : " + fr.Bytes(n) + " sur le disque"
	}
	w := e.stdout
	fmt.Fprintf(w, "Département %s (Mayenne) généré dans %s en %s (graine %d), du %s au %s :\n", *dep, into,
		fr.Duration(sum.Took), *seed, sum.From.Format("02/01/2006"), sum.Until.AddDate(0, 0, -1).Format("02/01/2006"))
	fmt.Fprintf(w, "  %s conseillers, 1 coordinatrice, %s structures\n", fr.Number(sum.Conseillers), fr.Number(sum.Structures))
	fmt.Fprintf(w, "  %s bénéficiaires, %s activités (dont %s à domicile), %s accompagnements\n",
		fr.Number(sum.Beneficiaires), fr.Number(sum.Activites), fr.Number(sum.HomeVisits), fr.Number(sum.Accompagnements))
	fmt.Fprintf(w, "  %s rendez-vous, %s ateliers avec participants anonymes, %s activités de coordination\n",
		fr.Number(sum.RendezVous), fr.Number(sum.ParticipantsAnonymes), fr.Number(sum.ActivitesCoordination))
	fmt.Fprintf(w, "  %s appareils, %s conflits à examiner\n", fr.Number(sum.Devices), fr.Number(sum.Conflicts))
	fmt.Fprintf(w, "  %s cellules synchronisables ; %s\n", fr.Number(sum.Cells), ondisk)
	if *retention > 0 {
		fmt.Fprintf(w, "  %s bénéficiaires sans mise à jour depuis %s anonymisés, comme le fait chaque jour la tâche de rétention du serveur\n",
			fr.Number(anonymised), fr.Duration(*retention))
	}
	fmt.Fprintf(w, "\nComptes de démonstration (mot de passe commun : %s) :\n", demo.DefaultPassword)
	for _, a := range sum.Accounts {
		fmt.Fprintf(w, "  %-40s %-13s %s\n", a.Email, a.Role, a.Name)
	}
	return nil
}

// dirSize adds up the sizes of the files in dir: the database and what
// SQLite keeps beside it.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("taille de %s : %w", dir, err)
	}
	return total, nil
}
