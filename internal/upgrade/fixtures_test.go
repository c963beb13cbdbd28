package upgrade_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	_ "github.com/mattn/go-sqlite3" // the sqlite3 driver, to read fixtures as plain files

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/internal/upgrade"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

var (
	update      = flag.Bool("update", false, "write the server and device fixtures again with this commit's code (only while its layout is the one to keep)")
	updateAside = flag.Bool("update-aside", false, "write the fixture of the device keeping cells aside again with this commit's code (idem)")
)

const (
	serverFixture = "testdata/" + upgrade.ServerDB
	deviceFixture = "testdata/" + upgrade.DeviceDB
	asideFixture  = "testdata/" + upgrade.AsideDB
	goldenFile    = "testdata/" + upgrade.GoldenJSON
	password      = "motdepasse-fixture"
)

// TestFixtures checks that the fixtures hold what golden.json says, read
// in the layout that wrote them (the one of the commit in
// testdata/README.md): the golden file is what an upgrade must keep, so
// it must first be true of the files. With -update it writes them both
// again by running the scenario below on this commit's code.
func TestFixtures(t *testing.T) {
	if *update {
		writeFixtures(t)
	}
	if *updateAside {
		writeAsideFixture(t)
	}
	var total int64
	for _, f := range []string{serverFixture, deviceFixture, asideFixture} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
		for _, side := range []string{"-wal", "-shm", "-journal"} {
			if _, err := os.Stat(f + side); err == nil {
				t.Errorf("%s%s exists: a fixture is one file, its log checkpointed into it", f, side)
			}
		}
	}
	if total > 1<<20 {
		t.Errorf("fixtures weigh %d bytes, keep them under 1 MB", total)
	}
	want, err := upgrade.ReadGolden(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	got := upgrade.Golden{
		WrittenBy:   want.WrittenBy,
		Server:      readOldServer(t, filepath.Join(upgrade.ServerDataDir(t), "relais.db")),
		Device:      readOldDevice(t, upgrade.DeviceReplica(t)),
		DeviceAside: readOldDevice(t, upgrade.AsideReplica(t)),
	}
	if a, b := canonJSON(t, want), canonJSON(t, got); a != b {
		t.Fatalf("the fixtures do not hold what %s says:\n%s", goldenFile, firstDiff(a, b))
	}
	// What the upgrade test needs the fixtures to contain.
	g := want
	has := map[string]bool{
		"a server conflict":         len(g.Server.Conflicts) > 0,
		"a device outbox entry":     len(g.Device.Outbox) > 0,
		"a device refused write":    len(g.Device.Rejected) > 0,
		"a server tombstone":        hasCell(g.Server.Cells, "_deleted", "1"),
		"a device tombstone":        hasCell(g.Device.Cells, "_deleted", "1"),
		"a beneficiary handed over": len(g.Server.Tables["beneficiaire"]) > 0,
		"a cell kept aside":         hasCell(g.DeviceAside.Cells, "canal", `"visio"`),
		"an edit beside kept cells": len(g.DeviceAside.Outbox) > 0,
	}
	for what, ok := range has {
		if !ok {
			t.Errorf("the fixtures hold no %s", what)
		}
	}
}

func hasCell(cells []map[string]any, col, val string) bool {
	for _, c := range cells {
		if c["col"] == col && jsonText(c["val"]) == val {
			return true
		}
	}
	return false
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// copyFixture copies a fixture to a temporary file, so that opening it
// (which may write, even to a read-only connection's -shm) never
// touches testdata.
func copyFixture(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	copyFile(t, path, dst)
	return dst
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func openPlain(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func rows(t *testing.T, db *sql.DB, q string) []map[string]any {
	t.Helper()
	r, err := upgrade.ReadRows(context.Background(), db, q)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// readOldServer reads a server database of the per-cell layout
// (_cells, migrations/replica 00001 and 00002).
func readOldServer(t *testing.T, path string) upgrade.Content {
	t.Helper()
	db := openPlain(t, path)
	tables, err := upgrade.ReadTables(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return upgrade.Content{
		Tables:    tables,
		Cells:     rows(t, db, "SELECT tbl, pk, col, val, hlc, node, seq, owner FROM _cells ORDER BY tbl, pk, col"),
		Conflicts: rows(t, db, "SELECT * FROM _conflicts ORDER BY id"),
		Replica:   rows(t, db, "SELECT node, hlc, seq FROM _replica")[0],
	}
}

// readOldDevice reads a device replica of the per-cell layout, with its
// per-cell outbox and refused writes (migrations/device).
func readOldDevice(t *testing.T, path string) upgrade.Content {
	t.Helper()
	db := openPlain(t, path)
	tables, err := upgrade.ReadTables(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	dev := rows(t, db, "SELECT * FROM _device")[0]
	delete(dev, "access_token")
	delete(dev, "refresh_token")
	return upgrade.Content{
		Tables:    tables,
		Cells:     rows(t, db, "SELECT tbl, pk, col, val, hlc, node FROM _cells ORDER BY tbl, pk, col"),
		Conflicts: rows(t, db, "SELECT * FROM _conflicts ORDER BY id"),
		Outbox:    rows(t, db, "SELECT * FROM _outbox ORDER BY id"),
		Rejected:  rows(t, db, "SELECT * FROM _rejected ORDER BY id"),
		Replica:   rows(t, db, "SELECT node, hlc FROM _replica")[0],
		Device:    dev,
	}
}

// canonJSON is v as indented JSON with numbers kept exact, so that a
// golden file read back and content read from SQLite compare equal.
func canonJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out) + "\n"
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return "line " + itoa(i+1) + ": golden " + x + "\n        fixture " + y
		}
	}
	return "same text"
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// writeFixtures runs the scenario on a real server and real devices,
// stops them, checkpoints each database into one file and writes
// testdata/ and golden.json.
func writeFixtures(t *testing.T) {
	work := t.TempDir()
	dataDir := filepath.Join(work, "server")
	devPath := filepath.Join(work, "tablette-claire.db")
	t.Run("scenario", func(t *testing.T) { scenario(t, dataDir, devPath) }) // its cleanups stop the server
	if t.Failed() {
		t.FailNow()
	}
	compact(t, server.DBPath(dataDir))
	compact(t, devPath)
	for _, d := range []string{"testdata/server", "testdata/device"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, server.DBPath(dataDir), serverFixture)
	copyFile(t, devPath, deviceFixture)
	commit, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	g := goldenOrNew(t)
	g.WrittenBy = strings.TrimSpace(string(commit))
	g.Server = readOldServer(t, copyFixture(t, serverFixture))
	g.Device = readOldDevice(t, copyFixture(t, deviceFixture))
	writeGolden(t, g)
}

func goldenOrNew(t *testing.T) *upgrade.Golden {
	t.Helper()
	if _, err := os.Stat(goldenFile); err != nil {
		return &upgrade.Golden{}
	}
	g, err := upgrade.ReadGolden(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func writeGolden(t *testing.T, g *upgrade.Golden) {
	t.Helper()
	if err := os.WriteFile(goldenFile, []byte(canonJSON(t, g)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeAsideFixture: a server of a newer release (one more column on
// activite, one more table: domain/testdata/newer) and a device of this
// release, which keeps aside the cells it has no column for; it then
// edits the same activity offline (its outbox).
func writeAsideFixture(t *testing.T) {
	work := t.TempDir()
	devPath := filepath.Join(work, "tablette-ancienne.db")
	t.Run("scenario", func(t *testing.T) {
		ctx := context.Background()
		dataDir := filepath.Join(work, "server")
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		relaistest.MigrateFile(t, server.DBPath(dataDir), relaistest.NewerDomain(t, "../../domain/testdata/newer"), migrations.Replica, migrations.Domain)
		srv := relaistest.StartServer(t, server.Config{DataDir: dataDir})
		claire := srv.AddUser(t, "claire@exemple.fr", auth.RoleConseiller, password)
		old, err := device.Open(ctx, devPath, device.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := old.Close(); err != nil {
				t.Error(err)
			}
		}()
		if _, known := old.Schema().ColumnType("activite", "canal"); known {
			t.Fatal("this release's device already knows activite.canal")
		}
		if err := old.Login(ctx, srv.URL, claire.Email, password); err != nil {
			t.Fatal(err)
		}
		act, sup := newID(), newID()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(srv.WriteRow(ctx, "activite", act, map[string]any{"mediateur_id": claire.ID, "type": "individuel", "date": "2026-11-03",
			"duree": 30, "type_lieu": "domicile", "commune": "Laval", "canal": "visio"}))
		must(srv.WriteRow(ctx, "support_atelier", sup, map[string]any{"mediateur_id": claire.ID, "activite_id": act, "titre": "Fiche « Mon espace santé »"}))
		syncOK(t, old)
		sqlExec(t, old, `UPDATE activite SET duree = 60, notes = 'Suite en visio' WHERE id = ?`, act)
	})
	if t.Failed() {
		t.FailNow()
	}
	compact(t, devPath)
	copyFile(t, devPath, asideFixture)
	g := goldenOrNew(t)
	g.DeviceAside = readOldDevice(t, copyFixture(t, asideFixture))
	writeGolden(t, g)
}

// compact checkpoints a database's WAL into its file, leaves WAL mode
// (the next open sets it again) and vacuums, so that the fixture is one
// small file.
func compact(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{"PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA journal_mode=DELETE", "PRAGMA page_size=1024", "VACUUM"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s on %s: %v", q, path, err)
		}
	}
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func sqlExec(t *testing.T, r *device.Replica, q string, args ...any) {
	t.Helper()
	if _, err := r.DB().ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func syncOK(t *testing.T, r *device.Replica) device.Report {
	t.Helper()
	rep, err := r.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return rep
}

// scenario: an administrator and two conseillers. Claire's tablet A
// (the device fixture) and her tablet B record activities and
// beneficiaries; both edit one activity offline (a conflict in the
// server's log); A deletes an activity; the administrator hands one of
// Claire's beneficiaries to Paul, which A, not yet told, then edits (a
// refused row in A's _rejected); A finally writes offline (its outbox).
func scenario(t *testing.T, dataDir, devPath string) {
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{DataDir: dataDir})
	srv.AddUser(t, "camille@exemple.fr", auth.RoleAdmin, password)
	claire := srv.AddUser(t, "claire@exemple.fr", auth.RoleConseiller, password)
	paul := srv.AddUser(t, "paul@exemple.fr", auth.RoleConseiller, password)

	a, err := device.Open(ctx, devPath, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	}()
	if err := a.Login(ctx, srv.URL, claire.Email, password); err != nil {
		t.Fatal(err)
	}
	b := srv.LoggedInDevice(t, "tablette-b", claire.Email, password)
	admin := srv.LoggedInDevice(t, "admin", "camille@exemple.fr", password)

	// Reference data, by the administrator.
	structure := newID()
	sqlExec(t, admin, `INSERT INTO structure (id, nom, commune, code_postal) VALUES (?, 'France services de Laval', 'Laval', '53000')`, structure)
	syncOK(t, admin)

	acts := []string{newID(), newID(), newID()}
	for i, id := range acts {
		sqlExec(t, a, `INSERT INTO activite (id, type, date, duree, type_lieu, structure_id, commune, notes)
			VALUES (?, 'individuel', ?, 45, 'lieu_activite', ?, 'Laval', ?)`, id, "2026-11-0"+itoa(i+2), structure, "visite n°"+itoa(i+1))
	}
	benKept, benHanded := newID(), newID()
	sqlExec(t, a, `INSERT INTO beneficiaire (id, prenom, nom, annee_naissance, commune, genre) VALUES (?, 'Josiane', 'Lefèvre', 1948, 'Laval', 'feminin')`, benKept)
	sqlExec(t, a, `INSERT INTO beneficiaire (id, prenom, nom, annee_naissance, commune) VALUES (?, 'Marcel', 'Guérin', 1951, 'Mayenne')`, benHanded)
	syncOK(t, a)
	syncOK(t, b)

	// A conflict: both tablets edit the same duration offline.
	sqlExec(t, a, `UPDATE activite SET duree = 60 WHERE id = ?`, acts[0])
	sqlExec(t, b, `UPDATE activite SET duree = 90 WHERE id = ?`, acts[0])
	syncOK(t, a)
	if rep := syncOK(t, b); rep.Conflicts == 0 {
		t.Fatalf("tablet B's edit met no conflict: %+v", rep)
	}
	// A deletion.
	sqlExec(t, a, `DELETE FROM activite WHERE id = ?`, acts[1])
	syncOK(t, a)

	// The administrator hands a beneficiary to Paul; A, not yet told,
	// edits it: the server refuses that row.
	syncOK(t, admin)
	sqlExec(t, admin, `UPDATE beneficiaire SET mediateur_id = ? WHERE id = ?`, paul.ID, benHanded)
	syncOK(t, admin)
	sqlExec(t, a, `UPDATE beneficiaire SET notes = 'Rappeler pour la CAF' WHERE id = ?`, benHanded)
	if rep := syncOK(t, a); rep.Rejected == 0 {
		t.Fatalf("the edit of a handed-over beneficiary was not refused: %+v", rep)
	}

	// Offline writes, left in A's outbox: a new activity, an edit, a
	// deletion.
	sqlExec(t, a, `INSERT INTO activite (id, type, date, duree, type_lieu, commune, autonomie) VALUES (?, 'collectif', '2026-11-20', 120, 'domicile', 'Château-Gontier', NULL)`, newID())
	sqlExec(t, a, `UPDATE beneficiaire SET commune = 'Évron' WHERE id = ?`, benKept)
	sqlExec(t, a, `DELETE FROM activite WHERE id = ?`, acts[2])
	syncOK(t, b)
}
