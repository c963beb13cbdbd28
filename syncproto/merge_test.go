package syncproto

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func TestDecide(t *testing.T) {
	v := func(hlc int64, node string) Version { return Version{HLC: Timestamp(hlc), Node: node} }
	none := Version{}
	cases := []struct {
		name                 string
		held, incoming, prev Version
		want                 Decision
	}{
		{"first write of the cell", none, v(10, "a"), none, Decision{Outcome: Won}},
		{"first write, its writer held something", none, v(10, "a"), v(5, "b"), Decision{Outcome: Won}},
		{"the same write again", v(10, "a"), v(10, "a"), none, Decision{Outcome: Duplicate}},
		{"the same write again, whatever its prev", v(10, "a"), v(10, "a"), v(3, "c"), Decision{Outcome: Duplicate}},
		{"a later write that saw the held one", v(10, "a"), v(11, "b"), v(10, "a"), Decision{Outcome: Won}},
		{"a later write that did not", v(10, "a"), v(11, "b"), v(9, "b"), Decision{Outcome: Won, Concurrent: true}},
		{"a later write whose writer held nothing", v(10, "a"), v(11, "b"), none, Decision{Outcome: Won, Concurrent: true}},
		{"an older write that saw the held one", v(10, "a"), v(9, "b"), v(10, "a"), Decision{Outcome: Lost}},
		{"an older write that did not", v(10, "a"), v(9, "b"), v(8, "a"), Decision{Outcome: Lost, Concurrent: true}},
		{"same clock, higher node wins", v(10, "a"), v(10, "b"), v(9, "a"), Decision{Outcome: Won, Concurrent: true}},
		{"same clock, lower node loses", v(10, "b"), v(10, "a"), v(9, "a"), Decision{Outcome: Lost, Concurrent: true}},
		{"a replayed write the held one overwrote", v(12, "a"), v(10, "a"), none, Decision{Outcome: Lost, Concurrent: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Decide(c.held, c.incoming, c.prev); got != c.want {
				t.Errorf("Decide(held %v, incoming %v, prev %v) = %+v, want %+v", c.held, c.incoming, c.prev, got, c.want)
			}
		})
	}
}

// cell merges writes one by one as a replica does, and keeps the
// conflicts it would record as (winner, loser) pairs.
type cell struct {
	held      Version
	conflicts [][2]Version
}

func (c *cell) merge(incoming, prev Version) {
	d := Decide(c.held, incoming, prev)
	switch d.Outcome {
	case Won:
		if d.Concurrent {
			c.conflicts = append(c.conflicts, [2]Version{incoming, c.held})
		}
		c.held = incoming
	case Lost:
		if d.Concurrent {
			c.conflicts = append(c.conflicts, [2]Version{c.held, incoming})
		}
	}
}

// Replicas that merge the same writes, in any order and any number of
// times each, hold the same write: the greatest.
func TestDecideConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		writes := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Version { return genVersion(t, "w") }), 1, 8).Draw(t, "writes")
		order := rapid.SliceOfN(rapid.IntRange(0, len(writes)-1), len(writes), 3*len(writes)).Draw(t, "order")
		for i := range writes {
			order = append(order, i) // every write arrives at least once
		}
		order = rapid.Permutation(order).Draw(t, "arrival")
		var r cell
		for _, i := range order {
			r.merge(writes[i], genVersion(t, "prev"))
		}
		if want := slices.MaxFunc(writes, Compare); r.held != want {
			t.Fatalf("replica holds %v after merging %v in order %v, want %v", r.held, writes, order, want)
		}
	})
}

// The verdict follows Compare exactly, and merging what is held again
// changes nothing.
func TestDecideFollowsCompare(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		held, incoming, prev := genVersion(t, "held"), genVersion(t, "incoming"), genVersion(t, "prev")
		d := Decide(held, incoming, prev)
		want := map[int]Outcome{-1: Lost, 0: Duplicate, 1: Won}[Compare(incoming, held)]
		if d.Outcome != want {
			t.Fatalf("Decide(%v, %v, %v) = %v, Compare says %v", held, incoming, prev, d.Outcome, want)
		}
		if d.Concurrent != (d.Outcome != Duplicate && prev != held) {
			t.Fatalf("Decide(%v, %v, %v): concurrent = %v", held, incoming, prev, d.Concurrent)
		}
		if again := Decide(held, held, prev); again.Outcome != Duplicate || again.Concurrent {
			t.Fatalf("merging the held write %v again: %+v", held, again)
		}
	})
}

// Two writes that did not see each other meet as one conflict, with the
// same winner and loser whichever arrives first; a write that saw the
// other meets it as no conflict at all.
func TestDecideConflictsDoNotDependOnArrival(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Both written over base, so both stamped above it.
		base := genVersion(t, "base")
		above := func(label string) Version {
			v := genVersion(t, label)
			v.HLC += base.HLC
			return v
		}
		a, b := above("a"), above("b")
		if a == b {
			t.Skip("two writes, not one")
		}
		ab, ba := cell{held: base}, cell{held: base}
		ab.merge(a, base)
		ab.merge(b, base)
		ba.merge(b, base)
		ba.merge(a, base)
		if ab.held != ba.held {
			t.Fatalf("orders disagree on the winner: %v, %v", ab.held, ba.held)
		}
		last := func(c cell) [2]Version { return c.conflicts[len(c.conflicts)-1] }
		if len(ab.conflicts) == 0 || len(ba.conflicts) == 0 || last(ab) != last(ba) {
			t.Fatalf("a=%v b=%v over %v: conflicts %v then %v", a, b, base, ab.conflicts, ba.conflicts)
		}
		if w := last(ab); w != [2]Version{slices.MaxFunc([]Version{a, b}, Compare), slices.MinFunc([]Version{a, b}, Compare)} {
			t.Fatalf("conflict %v between %v and %v", w, a, b)
		}

		// b written after seeing a, and so stamped above it.
		seen := cell{held: base}
		seen.merge(a, base)
		before := len(seen.conflicts)
		after := Version{HLC: max(a.HLC, base.HLC) + 1, Node: b.Node}
		seen.merge(after, seen.held)
		if len(seen.conflicts) != before || seen.held != after {
			t.Fatalf("a write that saw %v: held %v, conflicts %v", a, seen.held, seen.conflicts)
		}
	})
}

func TestNewestWrites(t *testing.T) {
	ch := func(table, pk, col string, hlc int64, node string) Change {
		return Change{Table: table, PK: pk, Column: col, Value: node, Version: Version{HLC: Timestamp(hlc), Node: node}}
	}
	changes := []Change{
		ch("activite", "1", "mediateur_id", 5, "a"),
		ch("activite", "1", "duree", 9, "a"),
		ch("activite", "1", "mediateur_id", 7, "a"),
		ch("activite", "1", "mediateur_id", 6, "b"),
		ch("activite", "2", "mediateur_id", 3, "a"),
		ch("activite", "2", "mediateur_id", 3, "b"),
		ch("structure", "3", "mediateur_id", 9, "a"), // a table without the column
		ch("beneficiaire", "1", "mediateur_id", 1, "a"),
	}
	owner := func(table string) (string, bool) { return "mediateur_id", table != "structure" }
	got := NewestWrites(changes, owner)
	want := map[RowKey]int{
		{Table: "activite", PK: "1"}:     2,
		{Table: "activite", PK: "2"}:     5,
		{Table: "beneficiaire", PK: "1"}: 7,
	}
	if len(got) != len(want) {
		t.Fatalf("NewestWrites = %v, want %v", got, want)
	}
	for k, i := range want {
		if got[k] != i {
			t.Errorf("row %v: newest is change %d, want %d", k, got[k], i)
		}
	}
}
