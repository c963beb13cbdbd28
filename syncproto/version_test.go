package syncproto

import (
	"encoding/json"
	"testing"

	"pgregory.net/rapid"
)

func genVersion(t *rapid.T, label string) Version {
	return Version{
		HLC:  Timestamp(rapid.Int64Range(1, 20).Draw(t, label+".hlc")),
		Node: rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, label+".node"),
	}
}

// merge is the LWW join of two versions: what a replica holds after
// seeing both. Replicas converge because this join is commutative,
// associative and idempotent, which is what these properties check of
// Compare, the one rule every merge uses.
func merge(a, b Version) Version {
	if a.Beats(b) {
		return a
	}
	return b
}

func TestMergeIsASemilattice(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genVersion(t, "a"), genVersion(t, "b"), genVersion(t, "c")
		if merge(a, b) != merge(b, a) {
			t.Fatalf("not commutative: %v %v", a, b)
		}
		if merge(merge(a, b), c) != merge(a, merge(b, c)) {
			t.Fatalf("not associative: %v %v %v", a, b, c)
		}
		if merge(a, a) != a || merge(merge(a, b), b) != merge(a, b) {
			t.Fatalf("not idempotent: %v %v", a, b)
		}
	})
}

func TestCompareIsATotalOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genVersion(t, "a"), genVersion(t, "b")
		if Compare(a, b) != -Compare(b, a) {
			t.Fatalf("antisymmetry fails for %v %v", a, b)
		}
		if (Compare(a, b) == 0) != (a == b) {
			t.Fatalf("equal versions must compare 0 and only they: %v %v", a, b)
		}
	})
}

func TestVersionJSON(t *testing.T) {
	v := Version{HLC: MakeTimestamp(1_700_000_000_000, 3), Node: "0192-node"}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `[111411200000000003,"0192-node"]` {
		t.Fatalf("wire form %s", data)
	}
	var back Version
	if err := json.Unmarshal(data, &back); err != nil || back != v {
		t.Fatalf("round trip gave %v, %v", back, err)
	}
	for _, bad := range []string{`{}`, `[1]`, `[1,"a",2]`, `["x","a"]`, `[1,2]`, `null1`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s decoded without error", bad)
		}
	}
}
