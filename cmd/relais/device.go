package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
)

// The device commands speak French: conseillers use them on the field to
// check what their tablet holds and whether it synced.
func init() {
	register("device login", command{"enrol this device on a server (password on stdin)", runDeviceLogin})
	register("device sync", command{"sync the replica with its server", runDeviceSync})
	register("device status", command{"show the replica's sync state", runDeviceStatus})
	register("device sql", command{"run SQL on the replica and print results", runDeviceSQL})
}

func deviceFlags(name string, e *env) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	db := fs.String("db", envOr(e, "RELAIS_DB", "relais-device.db"), "the device's replica file (env RELAIS_DB)")
	return fs, db
}

func openReplica(ctx context.Context, path string) (*device.Replica, error) {
	return device.Open(ctx, path, device.Options{RetryFor: 30 * time.Second, AppVersion: "relais-cli"})
}

func runDeviceLogin(ctx context.Context, args []string, e *env) error {
	fs, db := deviceFlags("device login", e)
	srv := fs.String("server", envOr(e, "RELAIS_SERVER", "http://127.0.0.1:8080"), "server URL (env RELAIS_SERVER)")
	email := fs.String("email", "", "your account's e-mail address")
	stdin := fs.Bool("password-stdin", false, "read the password from stdin (required)")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if *email == "" || !*stdin {
		return usagef("--email et --password-stdin sont obligatoires")
	}
	pw, err := readSecret(e.stdin)
	if err != nil {
		return err
	}
	r, err := openReplica(ctx, *db)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Login(ctx, *srv, *email, pw); err != nil {
		return fmt.Errorf("connexion impossible : %w", err)
	}
	fmt.Fprintf(e.stdout, "Appareil %s connecté à %s en tant que %s.\n", r.Node(), *srv, *email)
	return nil
}

func runDeviceSync(ctx context.Context, args []string, e *env) error {
	fs, db := deviceFlags("device sync", e)
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	r, err := openReplica(ctx, *db)
	if err != nil {
		return err
	}
	defer r.Close()
	rep, err := r.Sync(ctx)
	fmt.Fprintf(e.stdout, "Envoyées : %d modification(s) · Reçues : %d · Conflits : %d · Refusées : %d · Échanges : %d · Octets envoyés/reçus : %d/%d\n",
		rep.Pushed, rep.Pulled, rep.Conflicts, rep.Rejected, rep.Exchanges, rep.BytesUp, rep.BytesDown)
	if err != nil {
		return fmt.Errorf("synchronisation interrompue : %w", err)
	}
	fmt.Fprintln(e.stdout, "Synchronisation terminée.")
	return nil
}

func runDeviceStatus(ctx context.Context, args []string, e *env) error {
	fs, db := deviceFlags("device status", e)
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	r, err := openReplica(ctx, *db)
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := r.Status(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "Appareil\t%s\n", st.Node)
	if st.Revoked {
		fmt.Fprintf(w, "État\tRÉVOQUÉ le %s : les données locales ont été effacées\n", st.RevokedAt.Local().Format("02/01/2006 15:04"))
	}
	fmt.Fprintf(w, "Serveur\t%s\n", orDash(st.Server))
	fmt.Fprintf(w, "Compte\t%s\n", orDash(st.Email))
	fmt.Fprintf(w, "Connecté\t%s\n", yesNo(st.LoggedIn))
	fmt.Fprintf(w, "Modifications en attente\t%d\n", st.Pending)
	fmt.Fprintf(w, "Modifications refusées par le serveur\t%d\n", st.Rejected)
	last := "jamais"
	if !st.LastSync.IsZero() {
		last = st.LastSync.Local().Format("02/01/2006 15:04:05")
	}
	fmt.Fprintf(w, "Dernière synchronisation réussie\t%s\n", last)
	fmt.Fprintf(w, "Curseur\t%d\n", st.Cursor)
	fmt.Fprintf(w, "Version du schéma\t%d\n", st.SchemaVers)
	if st.LastError != "" {
		fmt.Fprintf(w, "Dernière erreur\t%s\n", st.LastError)
	}
	return w.Flush()
}

func runDeviceSQL(ctx context.Context, args []string, e *env) error {
	fs, db := deviceFlags("device sql", e)
	asCSV := fs.Bool("csv", false, "print results as CSV")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() != 1 {
		return usagef("give one SQL text, e.g. relais device sql --db FILE \"SELECT * FROM activite\"")
	}
	r, err := openReplica(ctx, *db)
	if err != nil {
		return err
	}
	defer r.Close()
	return runSQL(ctx, r.DB(), fs.Arg(0), *asCSV, e.stdout)
}

// runSQL runs one statement; a statement that returns rows is printed.
func runSQL(ctx context.Context, db *sql.DB, text string, asCSV bool, out io.Writer) error {
	rows, err := db.QueryContext(ctx, text)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	if len(cols) == 0 {
		return rows.Err()
	}
	var w interface {
		Write([]string) error
		Flush() error
	}
	if asCSV {
		cw := csv.NewWriter(out)
		w = csvWriter{cw}
	} else {
		w = &tableWriter{tw: tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)}
	}
	if err := w.Write(cols); err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		rec := make([]string, len(cols))
		for i, v := range vals {
			rec[i] = cellText(v)
		}
		if err := w.Write(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return w.Flush()
}

func cellText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []byte:
		return string(x)
	default:
		return fmt.Sprint(x)
	}
}

type csvWriter struct{ w *csv.Writer }

func (c csvWriter) Write(r []string) error { return c.w.Write(r) }
func (c csvWriter) Flush() error           { c.w.Flush(); return c.w.Error() }

type tableWriter struct{ tw *tabwriter.Writer }

func (t *tableWriter) Write(r []string) error {
	for i, s := range r {
		r[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(s)
	}
	_, err := fmt.Fprintln(t.tw, strings.Join(r, "\t"))
	return err
}
func (t *tableWriter) Flush() error { return t.tw.Flush() }

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
