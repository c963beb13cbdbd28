package device

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
)

func openTestReplica(t *testing.T) *Replica {
	t.Helper()
	r, err := Open(context.Background(), filepath.Join(t.TempDir(), "d.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func run(t *testing.T, r *Replica, q string, args ...any) {
	t.Helper()
	if _, err := r.DB().Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func pendingOf(t *testing.T, r *Replica) []syncproto.Change {
	t.Helper()
	p, err := r.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// cut cuts (or reads again) the batch to push, as a sync would.
func cut(t *testing.T, r *Replica) *syncproto.Batch {
	t.Helper()
	b, _, err := r.nextBatch(context.Background(), nil, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ack applies the server's acknowledgement of b, and page, as a sync would.
func ack(t *testing.T, r *Replica, b *syncproto.Batch, page ...syncproto.Change) {
	t.Helper()
	resp := &syncproto.SyncResponse{Changes: page}
	if b != nil {
		resp.Ack = b.ID
	}
	if _, err := r.applyAnswer(context.Background(), b, resp); err != nil {
		t.Fatal(err)
	}
}

func entries(t *testing.T, r *Replica) int {
	t.Helper()
	var n int
	if err := r.DB().QueryRow("SELECT COUNT(*) FROM _outbox").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// cells writes changes as "col=val@prev" sorted, prev being "none",
// "same" (the version of the change before it in the list, for the
// same cell), or the prev's hlc relative to the versions named.
func describe(changes []syncproto.Change, names map[syncproto.Version]string) string {
	var out []string
	for _, c := range changes {
		prev := "none"
		if c.Prev != (syncproto.Version{}) {
			prev = names[c.Prev]
			if prev == "" {
				prev = c.Prev.String()
			}
		}
		out = append(out, fmt.Sprintf("%s=%v@%s", c.Column, c.Value, prev))
	}
	slices.Sort(out)
	return fmt.Sprint(out)
}

// TestOutboxEntries: how writes become entries, and entries changes.
func TestOutboxEntries(t *testing.T) {
	id := "0192f1a0-0000-7000-8000-0000000000aa"
	t.Run("writes to one row fold into one entry", func(t *testing.T) {
		r := openTestReplica(t)
		run(t, r, "INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 30)", id)
		run(t, r, "UPDATE activite SET notes = 'x' WHERE id = ?", id)
		run(t, r, "UPDATE activite SET duree = 45 WHERE id = ?", id)
		var hlc int64
		if err := r.DB().QueryRow("SELECT hlc FROM _replica").Scan(&hlc); err != nil {
			t.Fatal(err)
		}
		p := pendingOf(t, r)
		if n := entries(t, r); n != 1 {
			t.Fatalf("%d entries, want 1", n)
		}
		if got := describe(p, nil); got != "[duree=45@none notes=x@none type=individuel@none]" {
			t.Fatalf("changes %s", got)
		}
		for _, c := range p {
			if c.Version.HLC != syncproto.Timestamp(hlc) || c.Version.Node != r.Node() {
				t.Fatalf("%s stamped %v, want the newest write's reading %d by %s", c.Column, c.Version, hlc, r.Node())
			}
		}
	})
	t.Run("a write after the cut is a new entry following the cut one", func(t *testing.T) {
		r := openTestReplica(t)
		run(t, r, "INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 30)", id)
		b := cut(t, r)
		first, _ := json.Marshal(b)
		run(t, r, "UPDATE activite SET duree = 60, notes = 'y' WHERE id = ?", id)
		again := cut(t, r)
		second, _ := json.Marshal(again)
		if string(first) != string(second) {
			t.Fatalf("the batch changed after a write:\n%s\n%s", first, second)
		}
		if n := entries(t, r); n != 2 {
			t.Fatalf("%d entries, want 2", n)
		}
		var sent syncproto.Version
		for _, c := range b.Changes {
			if c.Column == "duree" {
				sent = c.Version
			}
		}
		p := pendingOf(t, r)
		names := map[syncproto.Version]string{sent: "sent"}
		if got := describe(p[len(b.Changes):], names); got != "[duree=60@sent notes=y@none]" {
			t.Fatalf("new entry %s", got)
		}
		// Acknowledged, the first entry's version is the record's: the
		// second entry keeps following it.
		ack(t, r, b)
		if got := describe(pendingOf(t, r), names); got != "[duree=60@sent notes=y@none]" {
			t.Fatalf("after the ack: %s", got)
		}
	})
	t.Run("delete then re-create", func(t *testing.T) {
		r := openTestReplica(t)
		run(t, r, "INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 30)", id)
		b := cut(t, r)
		ack(t, r, b)
		run(t, r, "DELETE FROM activite WHERE id = ?", id)
		if got := describe(pendingOf(t, r), nil); got != "[_deleted=1@none]" {
			t.Fatalf("after the delete: %s", got)
		}
		del := cut(t, r)
		run(t, r, "INSERT INTO activite (id, duree) VALUES (?, 30)", id)
		p := pendingOf(t, r)[len(del.Changes):]
		names := map[syncproto.Version]string{del.Changes[0].Version: "deleted"}
		for _, c := range b.Changes {
			names[c.Version] = "acked"
		}
		// The re-creation is explicit, and clears what it does not set.
		if got := describe(p, names); got != "[_deleted=0@deleted type=<nil>@acked]" {
			t.Fatalf("re-creation %s", got)
		}
		// Deleted and re-created before any cut: one entry saying so.
		r2 := openTestReplica(t)
		run(t, r2, "INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 30)", id)
		b2 := cut(t, r2)
		ack(t, r2, b2)
		run(t, r2, "DELETE FROM activite WHERE id = ?", id)
		run(t, r2, "INSERT INTO activite (id, type, duree) VALUES (?, 'collectif', 30)", id)
		names2 := map[syncproto.Version]string{}
		for _, c := range b2.Changes {
			names2[c.Version] = "acked"
		}
		if got := describe(pendingOf(t, r2), names2); got != "[_deleted=0@none type=collectif@acked]" {
			t.Fatalf("deleted and re-created: %s", got)
		}
	})
	t.Run("insert or replace", func(t *testing.T) {
		r := openTestReplica(t)
		run(t, r, "INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 30)", id)
		b := cut(t, r)
		ack(t, r, b)
		run(t, r, "INSERT OR REPLACE INTO activite (id, duree) VALUES (?, 60)", id)
		names := map[syncproto.Version]string{}
		for _, c := range b.Changes {
			names[c.Version] = "acked"
		}
		if got := describe(pendingOf(t, r), names); got != "[duree=60@acked type=<nil>@acked]" {
			t.Fatalf("changes %s", got)
		}
	})
	t.Run("a pulled page between writes", func(t *testing.T) {
		r := openTestReplica(t)
		run(t, r, "INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 30)", id)
		var hlc int64
		if err := r.DB().QueryRow("SELECT hlc FROM _replica").Scan(&hlc); err != nil {
			t.Fatal(err)
		}
		other := "01a00000-0000-7000-8000-0000000000ff"
		older := syncproto.Version{HLC: syncproto.Timestamp(hlc - 1), Node: other}
		newer := syncproto.Version{HLC: syncproto.Timestamp(hlc + 1), Node: other}
		ack(t, r, nil,
			syncproto.Change{Table: "activite", PK: id, Column: "duree", Value: int64(99), Version: older},
			syncproto.Change{Table: "activite", PK: id, Column: "type", Value: "collectif", Version: newer},
			syncproto.Change{Table: "activite", PK: id, Column: "notes", Value: "distante", Version: newer})
		var typ, notes string
		var duree int64
		if err := r.DB().QueryRow("SELECT type, notes, duree FROM activite WHERE id = ?", id).Scan(&typ, &notes, &duree); err != nil {
			t.Fatal(err)
		}
		if typ != "collectif" || notes != "distante" || duree != 30 {
			t.Fatalf("row %s %s %d: want the newer remote cells, and her duree that beats the older one", typ, notes, duree)
		}
		// Her pending write keeps her values, even where a newer remote
		// one now shows in the row: it will lose on the server, seen.
		if got := describe(pendingOf(t, r), nil); got != "[duree=30@none type=individuel@none]" {
			t.Fatalf("pending after the page: %s", got)
		}
		run(t, r, "UPDATE activite SET notes = 'locale' WHERE id = ?", id)
		p := pendingOf(t, r)
		if got := describe(p[2:], map[syncproto.Version]string{newer: "remote"}); got != "[notes=locale@remote]" {
			t.Fatalf("write after the page: %s", got)
		}
	})
}

// TestOutboxProperties: random local writes, cuts and acknowledgements
// on a few rows; after each step the outbox says exactly what changed
// since the acknowledged state, each cell's changes form a chain (the
// first follows the acknowledged version, each next one the previous
// change), at most one entry per row is open, and a batch cut is sent
// again identical until acknowledged. Pulled pages touching the rows
// freeze their open entries, so that a cell has several pending changes.
func TestOutboxProperties(t *testing.T) {
	cols := []string{"nom", "adresse", "commune", "code_postal"}
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 13))
			r := openTestReplica(t)
			ids := make([]string, 4)
			for i := range ids {
				ids[i] = uuid.Must(uuid.NewV7()).String()
			}
			type cell struct{ pk, col string }
			ackedVal := map[cell]any{}
			ackedVer := map[cell]syncproto.Version{}
			var inFlight []byte
			var batch *syncproto.Batch
			value := func() any {
				if rng.IntN(5) == 0 {
					return nil
				}
				return fmt.Sprint("v", rng.IntN(4))
			}
			for step := range 60 {
				id := ids[rng.IntN(len(ids))]
				var exists bool
				if err := r.DB().QueryRow("SELECT EXISTS (SELECT 1 FROM structure WHERE id = ?)", id).Scan(&exists); err != nil {
					t.Fatal(err)
				}
				op := rng.IntN(8)
				switch {
				case op == 7:
					// A page touching the row, with a cell none of these
					// writes sets: the row's open entry is frozen.
					other := syncproto.Version{HLC: syncproto.Timestamp(step + 1), Node: "01a00000-0000-7000-8000-0000000000ff"}
					ack(t, r, nil, syncproto.Change{Table: "structure", PK: id, Column: "latitude", Value: float64(step), Version: other})
					held, err := replica.Versions(context.Background(), r.DB(), "structure", []string{id})
					if err != nil {
						t.Fatal(err)
					}
					if held[id]["latitude"] == other {
						ackedVal[cell{id, "latitude"}], ackedVer[cell{id, "latitude"}] = float64(step), other
					}
				case op == 0 && batch == nil:
					if batch = cut(t, r); batch != nil {
						inFlight, _ = json.Marshal(batch)
					}
				case op == 1 && batch != nil:
					ack(t, r, batch)
					for _, c := range batch.Changes {
						k := cell{c.PK, c.Column}
						ackedVal[k], ackedVer[k] = c.Value, c.Version
					}
					batch = nil
				case op == 2 && exists:
					run(t, r, "DELETE FROM structure WHERE id = ?", id)
				case op == 3:
					run(t, r, "INSERT OR REPLACE INTO structure (id, nom, commune) VALUES (?, ?, ?)", id, value(), value())
				case !exists:
					run(t, r, "INSERT INTO structure (id, nom, adresse) VALUES (?, ?, ?)", id, value(), value())
				default:
					c := cols[rng.IntN(len(cols))]
					run(t, r, "UPDATE structure SET "+c+" = ?, nom = COALESCE(nom, ?) WHERE id = ?", value(), value(), id)
				}
				if batch != nil {
					again := cut(t, r)
					if b, _ := json.Marshal(again); string(b) != string(inFlight) {
						t.Fatalf("step %d: the batch in flight changed:\n%s\n%s", step, inFlight, b)
					}
				}
				var open int
				if err := r.DB().QueryRow("SELECT COUNT(*) - COUNT(DISTINCT pk) FROM _outbox WHERE vals IS NULL").Scan(&open); err != nil || open != 0 {
					t.Fatalf("step %d: %d rows with more than one open entry (%v)", step, open, err)
				}
				pending := pendingOf(t, r)
				last := map[cell]syncproto.Change{}
				for _, c := range pending {
					k := cell{c.PK, c.Column}
					want := ackedVer[k]
					if p, ok := last[k]; ok {
						want = p.Version
					}
					if c.Prev != want {
						t.Fatalf("step %d: %s %s prev %v, want %v", step, c.PK, c.Column, c.Prev, want)
					}
					if last[k].Version.HLC >= c.Version.HLC && last[k].Version.Node != "" {
						t.Fatalf("step %d: %s %s versions do not increase", step, c.PK, c.Column)
					}
					last[k] = c
				}
				for _, pk := range ids {
					row := map[string]any{}
					var present bool
					q, err := r.DB().Query("SELECT nom, adresse, commune, code_postal FROM structure WHERE id = ?", pk)
					if err != nil {
						t.Fatal(err)
					}
					if q.Next() {
						present = true
						vals := make([]sql.NullString, len(cols))
						if err := q.Scan(&vals[0], &vals[1], &vals[2], &vals[3]); err != nil {
							t.Fatal(err)
						}
						for i, c := range cols {
							if vals[i].Valid {
								row[c] = vals[i].String
							} else {
								row[c] = nil
							}
						}
					}
					q.Close()
					deleted := int64(0)
					if !present {
						deleted = 1
					}
					tomb, known := ackedVal[cell{pk, "_deleted"}]
					if c, ok := last[cell{pk, "_deleted"}]; ok {
						tomb, known = c.Value, true
					}
					if known && fmt.Sprint(tomb) != fmt.Sprint(deleted) {
						t.Fatalf("step %d: %s deleted=%d, the outbox and acks say %v", step, pk, deleted, tomb)
					}
					if !present {
						continue
					}
					for _, c := range cols {
						got := ackedVal[cell{pk, c}]
						if ch, ok := last[cell{pk, c}]; ok {
							got = ch.Value
						}
						if fmt.Sprint(got) != fmt.Sprint(row[c]) {
							t.Fatalf("step %d: %s %s is %v, the outbox and acks say %v", step, pk, c, row[c], got)
						}
					}
				}
			}
		})
	}
}
