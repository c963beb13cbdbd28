package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/relais-numerique/relais/demo"
)

func init() {
	register("demo", command{"fill a data directory with a realistic département (Mayenne)", runDemo})
}

func runDemo(ctx context.Context, args []string, e *env) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	data := fs.String("data", envOr(e, "RELAIS_DATA", "./relais-data"), "server data directory (env RELAIS_DATA)")
	dep := fs.String("departement", "53", "département to describe (only 53, the Mayenne)")
	seed := fs.Uint64("seed", 1, "seed: the same seed, size and end date give the same data")
	size := fs.Int("size", demo.DefaultActivities, "number of activities to aim for over the two years")
	until := fs.String("until", demo.DefaultUntil.Format(time.DateOnly), "end of the two years (YYYY-MM-DD, exclusive)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	end, err := time.Parse(time.DateOnly, *until)
	if err != nil {
		return usagef("--until: %q is not a date YYYY-MM-DD", *until)
	}
	if *size <= 0 {
		return usagef("--size must be a positive number of activities")
	}
	sum, err := demo.GenerateDir(ctx, *data, demo.Options{Departement: *dep, Seed: *seed, Activities: *size, Until: end, Accounts: true})
	if err != nil {
		return err
	}
	w := e.stdout
	fmt.Fprintf(w, "Département %s (Mayenne) généré dans %s en %s (graine %d), du %s au %s :\n", *dep, *data,
		sum.Took.Round(10*time.Millisecond), *seed, sum.From.Format("02/01/2006"), sum.Until.AddDate(0, 0, -1).Format("02/01/2006"))
	fmt.Fprintf(w, "  %s conseillers, 1 coordinatrice, %s structures\n", nombre(sum.Conseillers), nombre(sum.Structures))
	fmt.Fprintf(w, "  %s bénéficiaires, %s activités (dont %s à domicile), %s accompagnements\n",
		nombre(sum.Beneficiaires), nombre(sum.Activites), nombre(sum.HomeVisits), nombre(sum.Accompagnements))
	fmt.Fprintf(w, "  %s rendez-vous, %s ateliers avec participants anonymes, %s activités de coordination\n",
		nombre(sum.RendezVous), nombre(sum.ParticipantsAnonymes), nombre(sum.ActivitesCoordination))
	fmt.Fprintf(w, "  %s cellules synchronisables\n\n", nombre(sum.Cells))
	fmt.Fprintf(w, "Comptes de démonstration (mot de passe commun : %s) :\n", demo.DefaultPassword)
	for _, a := range sum.Accounts {
		fmt.Fprintf(w, "  %-40s %-13s %s\n", a.Email, a.Role, a.Name)
	}
	return nil
}

// nombre writes an integer the French way: 50 000.
func nombre(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteRune('\u202f')
		}
		b.WriteRune(r)
	}
	return b.String()
}
