package device_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/store"
)

// A replica built by running SchemaSQL's statements, as the web SDK does,
// has exactly the tables, indexes, triggers and reference rows of one the
// Go SDK opens: the two SDKs' replicas cannot drift apart.
func TestSchemaSQLBuildsTheGoReplica(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	goReplica, err := device.Open(ctx, filepath.Join(dir, "go.db"), device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer goReplica.Close()

	doc, err := device.SchemaSQL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Migrations) == 0 || len(doc.Triggers) == 0 || len(doc.Tables) == 0 || len(doc.Erase) == 0 || len(doc.Rules) == 0 || doc.Version == "" {
		t.Fatalf("incomplete schema document: %d migrations, %d triggers, %d tables, %d erase, %d rules, version %q",
			len(doc.Migrations), len(doc.Triggers), len(doc.Tables), len(doc.Erase), len(doc.Rules), doc.Version)
	}
	web, err := store.Open(filepath.Join(dir, "web.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()
	for _, m := range doc.Migrations {
		if _, err := web.W.ExecContext(ctx, m.Up); err != nil {
			t.Fatalf("migration %s %d: %v", m.Set, m.Version, err)
		}
	}
	// What the SDK's conversion of the per-cell layout leaves of a fresh
	// replica, whose _cells is empty (replica.Init, the web SDK's
	// upgradeCells).
	if _, err := web.W.ExecContext(ctx, "DROP TABLE _cells"); err != nil {
		t.Fatal(err)
	}
	for _, trig := range doc.Triggers {
		if _, err := web.W.ExecContext(ctx, trig); err != nil {
			t.Fatalf("trigger: %v\n%s", err, trig)
		}
	}
	want, got := schemaDump(t, goReplica.DB()), schemaDump(t, web.W)
	if want != got {
		t.Fatalf("replica built from SchemaSQL differs from the Go SDK's:\n--- Go\n%s\n--- SchemaSQL\n%s", want, got)
	}
	again, err := device.SchemaSQL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again.Version != doc.Version {
		t.Fatalf("version digest not stable: %s then %s", doc.Version, again.Version)
	}
}

// schemaDump lists every schema object but goose's version tables, and
// the reference rows migrations insert.
func schemaDump(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master
		WHERE name NOT LIKE '\_migrations\_%' ESCAPE '\' AND name NOT LIKE 'sqlite_%' ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, tbl, text string
		if err := rows.Scan(&typ, &name, &tbl, &text); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s on %s: %s\n", typ, name, tbl, text)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var labels int
	var digest sql.NullString
	if err := db.QueryRow("SELECT COUNT(*), group_concat(enum || '=' || value || '=' || label, ';') FROM (SELECT * FROM _labels ORDER BY enum, value)").Scan(&labels, &digest); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "labels %d %d\n", labels, len(digest.String))
	return b.String()
}
