package upgrade_test

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/internal/upgrade"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// A server data directory and device replicas written by the per-cell
// layout open with this version, are converted to version records on
// their first open, and hold what they held: every domain row, every
// cell with its version (on the server its pull sequence and its row's
// owner), the conflict log, the outbox, the refused writes, the
// replica's identity. The converted device then syncs its pending writes
// with the converted server, and a device that kept a newer server's
// cells aside shows them once its own migration adds their column.
func TestUpgradeInPlace(t *testing.T) {
	ctx := context.Background()
	want := upgrade.Expected(t)

	srv := relaistest.StartServer(t, server.Config{DataDir: upgrade.ServerDataDir(t)})
	sdb := srv.DB().R
	compareContent(t, "server", sdb, want.Server, true)
	if n := countRows(t, sdb, "SELECT COUNT(*) FROM sqlite_master WHERE name = '_cells'"); n != 0 {
		t.Fatal("the server still has _cells after its conversion")
	}

	path := upgrade.DeviceReplica(t)
	r, err := device.Open(ctx, path, device.Options{})
	if err != nil {
		t.Fatalf("open the device of the per-cell layout: %v", err)
	}
	compareContent(t, "device", r.DB(), want.Device, false)

	// The converted device syncs with the converted server: its pending
	// writes reach it and leave the outbox, its refused write stays.
	if _, err := r.DB().ExecContext(ctx, "UPDATE _device SET server = ?", srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := r.Login(ctx, srv.URL, "claire@exemple.fr", password); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sync(ctx); err != nil {
		t.Fatalf("sync of the converted device with the converted server: %v", err)
	}
	if n := countRows(t, r.DB(), "SELECT COUNT(*) FROM _outbox"); n != 0 {
		t.Fatalf("%d entries left in the outbox after the sync", n)
	}
	if n := countRows(t, r.DB(), "SELECT COUNT(*) FROM _rejected"); n != len(want.Device.Rejected) {
		t.Fatalf("%d refused writes after the sync, want %d", n, len(want.Device.Rejected))
	}
	for _, e := range want.Device.Outbox {
		table, pk, col := e["tbl"].(string), e["pk"].(string), e["col"].(string)
		cell, ok, err := relaistest.HeldCell(ctx, sdb, table, pk, col)
		if err != nil {
			t.Fatal(err)
		}
		hlc, _ := e["hlc"].(json.Number).Int64()
		written := syncproto.Version{HLC: syncproto.Timestamp(hlc), Node: e["node"].(string)}
		if !ok || syncproto.Compare(cell.Version, written) < 0 {
			t.Errorf("the pending write %s.%s of %s (%s) did not reach the server: it holds %v", table, col, pk, written, cell.Version)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// The device of an older release that kept a newer server's cells
	// aside keeps them through the conversion, and shows them once its
	// app's migration adds the column and the table.
	aside := upgrade.AsideReplica(t)
	old, err := device.Open(ctx, aside, device.Options{})
	if err != nil {
		t.Fatalf("open the device keeping cells aside: %v", err)
	}
	compareContent(t, "device keeping cells aside", old.DB(), want.DeviceAside, false)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	relaistest.MigrateFile(t, aside, relaistest.NewerDomain(t, filepath.Join("..", "..", "domain", "testdata", "newer")), migrations.Replica, migrations.Domain, migrations.Device)
	upd, err := device.Open(ctx, aside, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer upd.Close()
	for _, c := range want.DeviceAside.Cells {
		if c["col"] != "canal" && c["tbl"] != "support_atelier" {
			continue
		}
		var got any
		err := upd.DB().QueryRowContext(ctx, fmt.Sprintf(`SELECT "%s" FROM "%s" WHERE id = ?`, c["col"], c["tbl"]), c["pk"]).Scan(&got)
		if err != nil || relaistest.Canon(got) != relaistest.Canon(c["val"]) {
			t.Errorf("kept-aside cell %s.%s of %s: %v (%v), want %v", c["tbl"], c["col"], c["pk"], got, err, c["val"])
		}
	}
}

// compareContent checks a converted replica against the golden content
// of its old layout.
func compareContent(t *testing.T, name string, db *sql.DB, want upgrade.Content, server bool) {
	t.Helper()
	ctx := context.Background()
	tables, err := upgrade.ReadTables(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := canonJSON(t, want.Tables), canonJSON(t, tables); a != b {
		t.Errorf("%s: domain rows differ after the conversion:\n%s", name, firstDiff(a, b))
	}
	if len(want.Cells) == 0 || len(want.Tables) == 0 {
		t.Fatalf("%s: the golden content holds no cells or rows: the comparison would prove nothing", name)
	}
	if a, b := cellLines(want.Cells, server), heldCells(t, db, server); a != b {
		t.Errorf("%s: cells differ after the conversion:\n%s", name, firstDiff(a, b))
	}
	for _, q := range []struct {
		what  string
		query string
		want  []map[string]any
	}{
		{"conflict log", "SELECT * FROM _conflicts ORDER BY id", want.Conflicts},
		{"outbox", pendingCellsSQL, outboxCells(want.Outbox)},
		{"refused writes", "SELECT * FROM _rejected ORDER BY id", want.Rejected},
	} {
		if q.what != "conflict log" && server {
			continue
		}
		got, err := upgrade.ReadRows(ctx, db, q.query)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := canonJSON(t, orEmpty(q.want)), canonJSON(t, orEmpty(got)); a != b {
			t.Errorf("%s: %s differs after the conversion:\n%s", name, q.what, firstDiff(a, b))
		}
	}
	rep, err := upgrade.ReadRows(ctx, db, "SELECT node, hlc, seq FROM _replica")
	if err != nil || len(rep) != 1 {
		t.Fatalf("%s: _replica: %v %v", name, rep, err)
	}
	if rep[0]["node"] != want.Replica["node"] {
		t.Errorf("%s: node %v, want %v", name, rep[0]["node"], want.Replica["node"])
	}
	if number(rep[0]["hlc"]) < number(want.Replica["hlc"]) {
		t.Errorf("%s: clock %v went back from %v", name, rep[0]["hlc"], want.Replica["hlc"])
	}
	if server && relaistest.Canon(rep[0]["seq"]) != relaistest.Canon(want.Replica["seq"]) {
		t.Errorf("%s: sequence %v, want %v", name, rep[0]["seq"], want.Replica["seq"])
	}
}

// pendingCellsSQL lists the converted outbox (one entry per row change,
// device migration 00072) cell by cell, as the per-cell outbox held
// them, in (tbl, pk, col, hlc) order: each change with its value, its
// version and its prev (every one explicit after a conversion from the
// per-cell layout), and its batch.
const pendingCellsSQL = `SELECT t.name AS tbl, o.pk, k.key AS col, k.value AS val, o.hlc, r.node,
	json_extract(o.prev, '$."' || k.key || '"[0]') AS prev_hlc, json_extract(o.prev, '$."' || k.key || '"[1]') AS prev_node, o.batch
	FROM _outbox o JOIN _tables t ON t.id = o.tbl, json_each(o.vals) k, _replica r
	ORDER BY t.name, o.pk, k.key, o.hlc`

// outboxCells is the golden per-cell outbox in pendingCellsSQL's form.
func outboxCells(entries []map[string]any) []map[string]any {
	out := make([]map[string]any, 0, len(entries))
	for _, e := range entries {
		c := map[string]any{}
		for k, v := range e {
			if k != "id" {
				c[k] = v
			}
		}
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(a, b map[string]any) int {
		for _, k := range []string{"tbl", "pk", "col"} {
			if c := strings.Compare(fmt.Sprint(a[k]), fmt.Sprint(b[k])); c != 0 {
				return c
			}
		}
		return cmp.Compare(number(a["hlc"]), number(b["hlc"]))
	})
	return out
}

func orEmpty(rows []map[string]any) []map[string]any {
	if rows == nil {
		return []map[string]any{}
	}
	return rows
}

// cellLines writes golden cells one per line, in (tbl, pk, col) order.
func cellLines(cells []map[string]any, server bool) string {
	var lines []string
	for _, c := range cells {
		l := fmt.Sprintf("%v|%v|%v|%s|%s|%v", c["tbl"], c["pk"], c["col"], relaistest.Canon(c["val"]), relaistest.Canon(c["hlc"]), c["node"])
		if server {
			owner := c["owner"]
			if owner == nil {
				owner = ""
			}
			l += fmt.Sprintf("|%s|%v", relaistest.Canon(c["seq"]), owner)
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// heldCells writes the cells a converted replica holds the same way. A
// device holds, for a cell it wrote and has not had acknowledged, the
// version of its outbox entry (the old layout kept it in _cells too).
func heldCells(t *testing.T, db *sql.DB, server bool) string {
	t.Helper()
	ctx := context.Background()
	cells, err := relaistest.Cells(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ tbl, pk, col string }
	held := map[key]relaistest.Cell{}
	for _, c := range cells {
		held[key{c.Table, c.PK, c.Column}] = c
	}
	if !server {
		pending, err := upgrade.ReadRows(ctx, db, pendingCellsSQL)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range pending {
			k := key{e["tbl"].(string), e["pk"].(string), e["col"].(string)}
			c := held[k]
			c.Change = syncproto.Change{Table: k.tbl, PK: k.pk, Column: k.col, Value: e["val"],
				Version: syncproto.Version{HLC: syncproto.Timestamp(number(e["hlc"])), Node: e["node"].(string)}}
			held[k] = c
		}
	}
	var lines []string
	for _, c := range held {
		l := fmt.Sprintf("%s|%s|%s|%s|%d|%s", c.Table, c.PK, c.Column, relaistest.Canon(c.Value), int64(c.Version.HLC), c.Version.Node)
		if server {
			l += fmt.Sprintf("|%d|%s", c.Seq, c.Owner)
		}
		lines = append(lines, l)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func number(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case json.Number:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	}
	return 0
}

func countRows(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
