package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/relais-numerique/relais/demo"
)

func runDemo(ctx context.Context, args []string, e *env) error {
	fs := newFlags("demo", e)
	data := fs.text(setData)
	dep := fs.String("departement", "53", "département décrit (seul 53, la Mayenne, existe)")
	seed := fs.Uint64("seed", 1, "graine : même graine, même taille et même fin donnent les mêmes données")
	size := fs.Int("size", demo.DefaultActivities, "nombre d'activités visé sur les deux ans")
	until := fs.String("until", demo.DefaultUntil.Format(time.DateOnly), "fin des deux ans (AAAA-MM-JJ, exclue)")
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
