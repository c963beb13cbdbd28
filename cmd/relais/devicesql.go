package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/fr"
)

func runDeviceSQL(ctx context.Context, args []string, e *env) error {
	fs, db := deviceFlags("device sql", e)
	asCSV := fs.Bool("csv", false, "afficher le résultat en CSV")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("donnez le SQL en un seul argument, par exemple : relais device sql --db FICHIER \"SELECT * FROM activite\"")
	}
	return withReplica(ctx, *db, func(r *device.Replica) error {
		changed, wrote, err := runSQL(ctx, r.DB(), fs.Arg(0), *asCSV, e.stdout)
		if err != nil {
			return explainSQL(err)
		}
		if wrote {
			// On stderr, so a script reading a CSV on stdout is unaffected.
			fmt.Fprintln(e.stderr, lignes(changed))
		}
		return nil
	})
}

func lignes(n int64) string {
	switch n {
	case 0:
		return "Aucune ligne modifiée."
	case 1:
		return "1 ligne modifiée."
	}
	return fr.Number(n) + " lignes modifiées."
}

// runSQL runs the statements of text in one transaction: all of them, or
// none if one fails. Statements that return rows are printed. It returns
// how many rows the others changed, and whether there were any.
func runSQL(ctx context.Context, db *sql.DB, text string, asCSV bool, out io.Writer) (changed int64, wrote bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, stmt := range splitSQL(text) {
		if returnsRows(stmt) {
			if err := printQuery(ctx, tx, stmt, asCSV, out); err != nil {
				return 0, false, err
			}
			continue
		}
		res, err := tx.ExecContext(ctx, stmt)
		if err != nil {
			return 0, false, err
		}
		wrote = true
		if n, err := res.RowsAffected(); err == nil {
			changed += n
		}
	}
	return changed, wrote, tx.Commit()
}

// returnsRows says whether a statement is read with Query: a SELECT and
// its kin, or a write with RETURNING.
func returnsRows(stmt string) bool {
	up := strings.ToUpper(strings.TrimSpace(stripComments(stmt)))
	for _, kw := range []string{"SELECT", "WITH", "VALUES", "PRAGMA", "EXPLAIN"} {
		if strings.HasPrefix(up, kw) {
			return true
		}
	}
	return strings.Contains(up, "RETURNING")
}

// splitSQL cuts text into statements at the semicolons outside quotes
// and comments. A text that creates a trigger, whose body holds
// semicolons, is kept whole.
func splitSQL(text string) []string {
	if strings.Contains(strings.ToUpper(stripComments(text)), "TRIGGER") {
		return []string{text}
	}
	var out []string
	var b strings.Builder
	flush := func() {
		if s := strings.TrimSpace(b.String()); s != "" && strings.TrimSpace(stripComments(s)) != "" {
			out = append(out, s)
		}
		b.Reset()
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\'' || c == '"' || c == '`' || c == '[':
			end := c
			if c == '[' {
				end = ']'
			}
			j := i + 1
			for j < len(text) && text[j] != end {
				j++
			}
			b.WriteString(text[i:min(j+1, len(text))])
			i = j
		case c == '-' && i+1 < len(text) && text[i+1] == '-':
			j := strings.IndexByte(text[i:], '\n')
			if j < 0 {
				j = len(text) - i
			}
			b.WriteString(text[i : i+j])
			i += j - 1
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			j := strings.Index(text[i+2:], "*/")
			end := len(text)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(text[i:end])
			i = end - 1
		case c == ';':
			flush()
		default:
			b.WriteByte(c)
		}
	}
	flush()
	return out
}

// stripComments removes SQL comments, for looking at a statement's
// first keyword.
func stripComments(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '-' && i+1 < len(s) && s[i+1] == '-':
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return b.String()
			}
			i += j
		case s[i] == '/' && i+1 < len(s) && s[i+1] == '*':
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return b.String()
			}
			i += j + 3
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func printQuery(ctx context.Context, tx *sql.Tx, stmt string, asCSV bool, out io.Writer) error {
	rows, err := tx.QueryContext(ctx, stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	var w interface {
		Write([]string) error
		Flush() error
	}
	if asCSV {
		w = csvWriter{csv.NewWriter(out)}
	} else {
		w = &tableWriter{tw: tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)}
	}
	if len(cols) > 0 {
		if err := w.Write(cols); err != nil {
			return err
		}
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
