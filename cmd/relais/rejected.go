package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/fr"
	"github.com/relais-numerique/relais/syncproto"
)

// setFlags collects repeated --set colonne=valeur.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func runDeviceRejected(ctx context.Context, args []string, e *env) error {
	fs, db := deviceFlags("device rejected", e)
	retryN := fs.Int("retry", 0, "renvoyer la fiche de la modification refusée N°, corrigée par --set")
	dismissN := fs.Int("dismiss", 0, "renoncer à la fiche de la modification refusée N° (la version du serveur reste)")
	var sets setFlags
	fs.Var(&sets, "set", "avec --retry : colonne=valeur, la valeur corrigée d'une colonne (répétable)")
	if err := fs.parse(args); err != nil {
		return err
	}
	retry, dismiss := int64(*retryN), int64(*dismissN)
	if retry != 0 && dismiss != 0 {
		return usagef("--retry et --dismiss ne vont pas ensemble")
	}
	if len(sets) > 0 && retry == 0 {
		return usagef("--set ne s'emploie qu'avec --retry")
	}
	return withReplica(ctx, *db, func(r *device.Replica) error {
		return rejected(ctx, r, retry, dismiss, sets, e)
	})
}

func rejected(ctx context.Context, r *device.Replica, retry, dismiss int64, sets setFlags, e *env) error {
	switch {
	case dismiss != 0:
		if err := r.Dismiss(ctx, dismiss); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Modification n° %d abandonnée : la version du serveur est conservée.\n", dismiss)
		return nil
	case retry != 0:
		fix, err := parseFixes(ctx, r, retry, sets)
		if err != nil {
			return err
		}
		if err := r.Retry(ctx, retry, fix); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Fiche de la modification n° %d enregistrée à nouveau : elle partira à la prochaine synchronisation (relais device sync).\n", retry)
		return nil
	}
	list, err := r.Rejected(ctx)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "Aucune modification refusée par le serveur.")
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "N°\tTable\tFiche\tColonne\tVotre valeur\tRaison\tRefusée le")
	for _, j := range list {
		val := "(vide)"
		if j.Value != nil {
			val = strings.NewReplacer("\t", " ", "\n", " ").Replace(syncproto.ValueText(j.Value))
		}
		if j.Column == syncproto.DeletedColumn {
			val = map[string]string{"1": "(suppression)", "0": "(recréation)"}[syncproto.ValueText(j.Value)]
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Table, j.PK, j.Column, val, j.Reason, fr.DateTime(j.At))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "\nPour renvoyer une fiche corrigée : relais device rejected --retry N° [--set colonne=valeur]…")
	fmt.Fprintln(e.stdout, "Pour y renoncer (la version du serveur reste) : relais device rejected --dismiss N°")
	return nil
}

// parseFixes reads --set colonne=valeur for the row of refused change
// id, typing each value as its column is typed.
func parseFixes(ctx context.Context, r *device.Replica, id int64, sets []string) (map[string]any, error) {
	if len(sets) == 0 {
		return nil, nil
	}
	list, err := r.Rejected(ctx)
	if err != nil {
		return nil, err
	}
	table := ""
	for _, j := range list {
		if j.ID == id {
			table = j.Table
		}
	}
	if table == "" {
		return nil, device.ErrNoRejection
	}
	fix := map[string]any{}
	for _, s := range sets {
		col, text, ok := strings.Cut(s, "=")
		if !ok || col == "" {
			return nil, usagef("--set attend colonne=valeur, pas %q", s)
		}
		typ, known := r.Schema().ColumnType(table, col)
		if !known {
			return nil, usagef("la table %s n'a pas de colonne %s", table, col)
		}
		switch {
		case text == "":
			fix[col] = nil
		case typ == syncproto.TypeInteger:
			n, err := strconv.ParseInt(text, 10, 64)
			if err != nil {
				return nil, usagef("%s attend un nombre entier, pas %q", col, text)
			}
			fix[col] = n
		case typ == syncproto.TypeReal:
			f, err := strconv.ParseFloat(text, 64)
			if err != nil {
				return nil, usagef("%s attend un nombre, pas %q", col, text)
			}
			fix[col] = f
		default:
			fix[col] = text
		}
	}
	return fix, nil
}
