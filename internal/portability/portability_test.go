package portability

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store/pgstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// ported are the directories (from the module root) whose every constant
// statement must run on PostgreSQL, but for those listed in pending.
var ported = []string{"server/auth", "server/web", "server/scope", "server/backup.go:ensureHistory", "server/backup.go:readHistory",
	"server/sync.go", "server/prepared.go", "server/metrics.go",
	"cmd/relais/access.go", "cmd/relais/devicesql.go", "cmd/relais/rejected.go", "domain", "server/gdpr.go", "server/pgrules.go",
	"server/pull.go", "server/write.go", "server/health.go", "server/groupwrite.go", "server/postgres.go",
	// The merge, but for reading SQLite's catalogue (the server on
	// PostgreSQL reads its schema with pgstore.LoadSchema) and converting
	// the per-cell layout, which PostgreSQL never had.
	"replica/merge.go", "replica/rows.go", "replica/held.go", "replica/write.go", "replica/prepared.go",
	"replica/read.go"}

// elsewhere are statements of the audited code that never run on
// PostgreSQL, by file or file:function, with the reason; they are
// neither checked nor listed as left to port.
var elsewhere = map[string]string{
	"domain/check.go:checksOf":        "the rules' checks run, on PostgreSQL, on an in-memory SQLite copy of the rows (server/pgrules.go)",
	"domain/triggers.go":              "the devices' capture triggers (SQLite)",
	"domain/erase.go:EraseStatements": "a device's erasure (SQLite, and the browser app)",
	"server/backup.go:CheckBackup":    "backups of a data directory; a PostgreSQL store is backed up with PostgreSQL's tools",
	"server/backup.go:Restore":        "backups of a data directory; a PostgreSQL store is backed up with PostgreSQL's tools",
	"replica/schema.go":               "reads SQLite's catalogue; the server on PostgreSQL reads its schema with pgstore.LoadSchema",
	"replica/upgrade.go":              "converts the per-cell layout, which PostgreSQL never had",
}

// pending are statements of ported code that wait for something else,
// by a fragment of their text, with the reason.
var pending = map[string]string{}

// audited are the directories whose statements are listed.
var audited = []string{"server", "replica", "domain", "cmd/relais"}

// Statements are written in capitals here; "update account %s" is a
// message.
var statementStart = regexp.MustCompile(`(?s)^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|REPLACE)\s`)

// template matches a statement written for fmt.Sprintf.
var template = regexp.MustCompile(`%[-+ #0-9.]*[sdvq]`)

type statement struct {
	file string // relative to the module root
	line int
	fn   string // enclosing function
	sql  string
}

// statements returns the constant SQL statements of the Go files (tests
// excluded) under dir: string literals, and constant concatenations of
// them, that start like a statement.
func statements(t *testing.T, root, dir string) []statement {
	t.Helper()
	var out []statement
	fset := token.NewFileSet()
	err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, decl := range f.Decls {
			fn := ""
			if fd, ok := decl.(*ast.FuncDecl); ok {
				fn = fd.Name.Name
			}
			ast.Inspect(decl, func(n ast.Node) bool {
				e, ok := n.(ast.Expr)
				if !ok {
					return true
				}
				s, ok := constString(e)
				if !ok {
					return true
				}
				if statementStart.MatchString(s) {
					out = append(out, statement{file: rel, line: fset.Position(e.Pos()).Line, fn: fn, sql: s})
				}
				return false // a constant's parts are not statements of their own
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func constString(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		a, ok1 := constString(e.X)
		b, ok2 := constString(e.Y)
		return a + b, ok1 && ok2
	case *ast.ParenExpr:
		return constString(e.X)
	}
	return "", false
}

func (s statement) in(scopes []string) bool {
	for _, p := range scopes {
		path, fn, _ := strings.Cut(p, ":")
		if (s.file == path || strings.HasPrefix(s.file, path+"/")) && (fn == "" || fn == s.fn) {
			return true
		}
	}
	return false
}

func elsewhereReason(s statement) string {
	for scope, why := range elsewhere {
		if s.in([]string{scope}) {
			return why
		}
	}
	return ""
}

// TestStatementsPrepareOnPostgres prepares every constant statement on a
// PostgreSQL database holding the twins of the migrations.
func TestStatementsPrepareOnPostgres(t *testing.T) {
	ctx := context.Background()
	db, err := pgstore.Open(ctx, pgtest.DB(t), pgstore.Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := migrations.UpPostgres(ctx, db.W, migrations.Compat, migrations.Replica, migrations.Domain, migrations.Server); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var all []statement
	for _, dir := range audited {
		all = append(all, statements(t, root, dir)...)
	}
	if len(all) < 50 {
		t.Fatalf("found only %d statements: the scan is broken", len(all))
	}
	conn, err := db.W.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	failed := map[string][]string{} // file -> failures
	var ok, checked int
	for i, s := range all {
		if why := elsewhereReason(s); why != "" {
			continue
		}
		if template.MatchString(s.sql) {
			if !s.in(ported) {
				failed[s.file] = append(failed[s.file], fmt.Sprintf("%d (%s): a template filled at run time: not checked here", s.line, s.fn))
			}
			continue
		}
		// PREPARE parses and plans without running: syntax, functions,
		// tables, columns and the parameters' types are all checked.
		q := fmt.Sprintf("PREPARE audit_%d AS %s", i, pgstore.Rebind(s.sql))
		_, err := conn.ExecContext(ctx, q)
		if err == nil {
			ok++
			_, _ = conn.ExecContext(ctx, fmt.Sprintf("DEALLOCATE audit_%d", i))
		}
		if s.in(ported) && err != nil && strings.Contains(err.Error(), "syntax error at end of input") {
			// The start of a statement completed at run time: the tests
			// that run the code on both engines check it whole.
			continue
		}
		if s.in(ported) {
			checked++
			reason := ""
			for frag, why := range pending {
				if strings.Contains(s.sql, frag) {
					reason = why
				}
			}
			switch {
			case err != nil && reason == "":
				t.Errorf("%s:%d (%s) does not run on PostgreSQL: %v\n%s", s.file, s.line, s.fn, err, s.sql)
			case err == nil && reason != "":
				t.Errorf("%s:%d (%s) runs on PostgreSQL now: take it out of pending", s.file, s.line, s.fn)
			}
			continue
		}
		if err != nil {
			msg := err.Error()
			if i := strings.Index(msg, " (SQLSTATE"); i > 0 {
				msg = msg[:i]
			}
			if strings.HasSuffix(msg, "syntax error at end of input") {
				msg = "the start of a statement completed at run time: not checked here"
			}
			failed[s.file] = append(failed[s.file], fmt.Sprintf("%d (%s): %s", s.line, s.fn, msg))
		}
	}
	if checked == 0 {
		t.Fatal("no statement of the ported code was found")
	}
	files := make([]string, 0, len(failed))
	n := 0
	for f, l := range failed {
		files = append(files, f)
		n += len(l)
	}
	sort.Strings(files)
	t.Logf("%d constant statements, %d prepare on PostgreSQL; %d of the ported code checked; %d left to port:", len(all), ok, checked, n)
	for _, f := range files {
		for _, l := range failed[f] {
			t.Logf("  %s:%s", f, l)
		}
	}
}
