package device

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

var update = flag.Bool("update", false, "rewrite testdata/apply_vectors.json from this implementation")

// applyVectorsFile holds cases of a device applying pulled pages: the
// pages as the server sends them (JSON), and the replica they leave
// (domain rows, cell versions, and the version records and dictionaries
// byte for byte). The web SDK's tests
// (client-sdk/web/test/vectors.test.ts) apply the same pages to a replica
// built from the same SQL and must find the same state: the two SDKs
// cannot disagree on what a pull leaves.
const applyVectorsFile = "testdata/apply_vectors.json"

type applyCase struct {
	// Pages are SyncResponse bodies in JSON, applied in order.
	Pages []json.RawMessage `json:"pages"`
	// ColumnPages are the same answers in the column form, base64.
	ColumnPages []string `json:"column_pages"`
	// Rows is what the domain table activite holds afterwards.
	Rows []map[string]any `json:"rows"`
	// Cells is every cell held, in order (table, pk, column), with its
	// value, SQLite type and version.
	Cells []vectorCell `json:"cells"`
	// Records are the rows of _rows, in (tbl, pk) order, as SQL reads
	// them, one line each, values between " | " (NULL for null): tbl,
	// hex(pk), owner, seq, deleted, hlc, hex(clocks), extra. Both SDKs
	// must write the same bytes.
	Records []string `json:"records"`
	// Tables, Columns and Nodes are the dictionaries (the tables the
	// records name): id | name, tbl | bit | name, id | node.
	Tables  []string `json:"tables"`
	Columns []string `json:"columns"`
	Nodes   []string `json:"nodes"`
}

// recordsSQL and the dictionaries' queries are the ones the web SDK's
// test runs.
var vectorQueries = map[string]string{
	"records": "SELECT tbl, hex(pk), owner, seq, deleted, CAST(hlc AS TEXT), hex(clocks), extra FROM _rows ORDER BY tbl, pk",
	"tables":  "SELECT id, name FROM _tables WHERE id IN (SELECT tbl FROM _rows) ORDER BY id",
	"columns": "SELECT tbl, bit, name FROM _columns WHERE tbl IN (SELECT tbl FROM _rows) ORDER BY tbl, bit",
	"nodes":   "SELECT id, node FROM _nodes ORDER BY id",
}

func vectorRows(t *testing.T, r *Replica, q string) []string {
	t.Helper()
	rows, err := r.DB().Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		line := make([]string, len(vals))
		for i, v := range vals {
			line[i] = "NULL"
			if v != nil {
				line[i] = fmt.Sprint(text(v))
			}
		}
		out = append(out, strings.Join(line, " | "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type vectorCell struct {
	Table string `json:"tbl"`
	PK    string `json:"pk"`
	Col   string `json:"col"`
	Val   any    `json:"val"`
	Type  string `json:"type"`
	HLC   string `json:"hlc"`
	Node  string `json:"node"`
}

type applyVectors struct {
	Comment string      `json:"comment"`
	Cases   []applyCase `json:"cases"`
}

// applyPages draws pages where the same cells are written often, by few
// nodes at few readings, with deletions, re-creations, columns and a
// table this replica does not know (kept aside), and NULLs.
func applyPages(rng *rand.Rand) [][]syncproto.Change {
	pks := []string{"0192f1a0-0000-7000-8000-00000000000a", "0192f1a0-0000-7000-8000-00000000000b", "0192f1a0-0000-7000-8000-00000000000c"}
	nodes := []string{"0192f1a0-0000-7000-8000-0000000000f1", "0192f1a0-0000-7000-8000-0000000000f2", "serveur"}
	base := syncproto.MakeTimestamp(1_780_000_000_000, 0)
	values := map[string][]any{
		"type":     {"individuel", "collectif", nil},
		"duree":    {int64(30), int64(45), int64(90), nil},
		"commune":  {"Laval", "Évron", "Château-Gontier-sur-Mayenne", nil},
		"_deleted": {int64(1), int64(0)},
		"futur":    {"valeur d'une colonne à venir", int64(7)},
	}
	cols := []string{"type", "duree", "commune", "_deleted", "futur"}
	var pages [][]syncproto.Change
	for p := rng.IntN(3) + 1; p > 0; p-- {
		var page []syncproto.Change
		for n := rng.IntN(8) + 1; n > 0; n-- {
			table, col := "activite", cols[rng.IntN(len(cols))]
			if rng.IntN(10) == 0 {
				table, col = "table_a_venir", "nom"
			}
			vs := values[col]
			if vs == nil {
				vs = []any{"x", "y"}
			}
			c := syncproto.Change{Table: table, PK: pks[rng.IntN(len(pks))], Column: col, Value: vs[rng.IntN(len(vs))],
				Version: syncproto.Version{HLC: base + syncproto.Timestamp(rng.IntN(4)), Node: nodes[rng.IntN(len(nodes))]}}
			if rng.IntN(3) == 0 {
				c.Prev = syncproto.Version{HLC: base + syncproto.Timestamp(rng.IntN(4)), Node: nodes[rng.IntN(len(nodes))]}
			}
			page = append(page, c)
		}
		pages = append(pages, page)
	}
	return pages
}

func makeApplyVectors(t *testing.T) applyVectors {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(13, 14))
	out := applyVectors{Comment: "Written by go test ./client-sdk/device -run TestApplyVectors -update; read by client-sdk/web's tests. Do not edit by hand."}
	for i := 0; i < 60; i++ {
		r, err := Open(ctx, filepath.Join(t.TempDir(), fmt.Sprintf("v%d.db", i)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		var c applyCase
		var cursor int64
		for _, changes := range applyPages(rng) {
			cursor += int64(len(changes))
			body, err := json.Marshal(syncproto.SyncResponse{Changes: changes, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := syncproto.DecodeResponse(body) // as a device reads it: numbers as json.Number
			if err != nil {
				t.Fatal(err)
			}
			// Encoded before it is applied: applying checks the
			// changes in place, numbers becoming integers.
			cols, err := syncproto.EncodeResponseColumns(resp)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.applyAnswer(ctx, nil, resp); err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			c.Pages = append(c.Pages, body)
			c.ColumnPages = append(c.ColumnPages, base64.StdEncoding.EncodeToString(cols))
		}
		c.Rows, c.Cells = dumpForVectors(t, r)
		c.Records = vectorRows(t, r, vectorQueries["records"])
		c.Tables = vectorRows(t, r, vectorQueries["tables"])
		c.Columns = vectorRows(t, r, vectorQueries["columns"])
		c.Nodes = vectorRows(t, r, vectorQueries["nodes"])
		r.Close()
		out.Cases = append(out.Cases, c)
	}
	return out
}

func dumpForVectors(t *testing.T, r *Replica) ([]map[string]any, []vectorCell) {
	t.Helper()
	rows, err := r.DB().Query("SELECT id, type, duree, commune FROM activite ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for rows.Next() {
		var id string
		var typ, duree, commune any
		if err := rows.Scan(&id, &typ, &duree, &commune); err != nil {
			t.Fatal(err)
		}
		out = append(out, map[string]any{"id": id, "type": text(typ), "duree": duree, "commune": text(commune)})
	}
	rows.Close()
	// Every cell held, as the per-cell layout listed them: the layout
	// changed (one version record per row), what a replica holds did not.
	var cells []vectorCell
	err = replica.EachCell(context.Background(), r.DB(), r.schema, func(ch syncproto.Change, _ int64) error {
		c := vectorCell{Table: ch.Table, PK: ch.PK, Col: ch.Column, Val: text(ch.Value),
			HLC: strconv.FormatInt(int64(ch.Version.HLC), 10), Node: ch.Version.Node}
		switch ch.Value.(type) {
		case nil:
			c.Type = "null"
		case int64:
			c.Type = "integer"
		case float64:
			c.Type = "real"
		default:
			c.Type = "text"
		}
		cells = append(cells, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, cells
}

func text(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// TestApplyVectors checks the committed cases against this SDK's apply
// (or rewrites them with -update).
func TestApplyVectors(t *testing.T) {
	want, err := json.MarshalIndent(makeApplyVectors(t), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(applyVectorsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(applyVectorsFile)
	if err != nil {
		t.Fatalf("%v (go test ./client-sdk/device -run TestApplyVectors -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what this SDK's apply leaves; if on purpose, rerun with -update and make the web SDK agree", applyVectorsFile)
	}
}

// upgradeVectorsFile holds what the Go SDK's conversion leaves of the
// per-cell device replicas in internal/upgrade/testdata/device (written
// by the per-cell layout's code): the version records, dictionaries,
// outbox and clock, as lines. The web SDK's test converts the same files
// (a browser holding a per-cell replica in OPFS) and must leave the same
// bytes.
const upgradeVectorsFile = "testdata/upgrade_vectors.json"

var upgradeQueries = []struct{ name, q string }{
	{"records", vectorQueries["records"]},
	{"tables", "SELECT id, name FROM _tables ORDER BY id"},
	{"columns", "SELECT tbl, bit, name FROM _columns ORDER BY tbl, bit"},
	{"nodes", "SELECT id, node FROM _nodes ORDER BY id"},
	{"outbox", "SELECT id, tbl, pk, mask, CAST(hlc AS TEXT), vals, prev, hex(base), batch FROM _outbox ORDER BY id"},
	{"rejected", "SELECT id, tbl, pk, col, quote(val), code FROM _rejected ORDER BY id"},
	{"clock", "SELECT CAST(hlc AS TEXT) FROM _replica"},
	{"cells", "SELECT name FROM sqlite_master WHERE name = '_cells'"},
}

func makeUpgradeVectors(t *testing.T) map[string]map[string][]string {
	ctx := context.Background()
	out := map[string]map[string][]string{}
	for _, name := range []string{"tablette-claire.db", "tablette-ancienne.db"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "internal", "upgrade", "testdata", "device", name))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, src, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]string{}
		for _, q := range upgradeQueries {
			m[q.name] = vectorRows(t, r, q.q)
			if m[q.name] == nil {
				m[q.name] = []string{}
			}
		}
		r.Close()
		out[name] = m
	}
	return out
}

// TestUpgradeVectors checks the committed conversions against this SDK's
// (or rewrites them with -update).
func TestUpgradeVectors(t *testing.T) {
	v := makeUpgradeVectors(t)
	if len(v["tablette-claire.db"]["records"]) == 0 || len(v["tablette-claire.db"]["outbox"]) == 0 || len(v["tablette-claire.db"]["cells"]) != 0 {
		t.Fatalf("the conversion of tablette-claire.db left no records, no outbox, or _cells: %v", v["tablette-claire.db"])
	}
	want, err := json.MarshalIndent(map[string]any{
		"comment": "Written by go test ./client-sdk/device -run TestUpgradeVectors -update; read by client-sdk/web's tests. Do not edit by hand.",
		"cases":   v,
	}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile(upgradeVectorsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(upgradeVectorsFile)
	if err != nil {
		t.Fatalf("%v (go test ./client-sdk/device -run TestUpgradeVectors -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what this SDK's conversion leaves; if on purpose, rerun with -update and make the web SDK agree", upgradeVectorsFile)
	}
}
