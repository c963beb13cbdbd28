package syncproto_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/relais-numerique/relais/syncproto"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json from this implementation")

// vectorsFile holds test vectors of the merge rule and the clock, written
// by this implementation and read by the web SDK's tests
// (client-sdk/web/test/vectors.test.ts): both SDKs decide every case the
// same way, or one of the two test suites fails. Timestamps are decimal
// strings, since JavaScript numbers cannot hold 64-bit integers.
const vectorsFile = "testdata/vectors.json"

type vecVersion struct {
	HLC  string `json:"hlc"`
	Node string `json:"node"`
}

type decideVector struct {
	Held       vecVersion `json:"held"`
	Incoming   vecVersion `json:"incoming"`
	Prev       vecVersion `json:"prev"`
	Compare    int        `json:"compare"` // Compare(incoming, held)
	Outcome    string     `json:"outcome"`
	Concurrent bool       `json:"concurrent"`
}

type nextVector struct {
	Last     string `json:"last"`
	Received string `json:"received"`
	Physical string `json:"physical"`
	Next     string `json:"next"`
}

type vectors struct {
	Comment string         `json:"comment"`
	Decide  []decideVector `json:"decide"`
	Next    []nextVector   `json:"next"`
}

func vv(v syncproto.Version) vecVersion {
	return vecVersion{HLC: strconv.FormatInt(int64(v.HLC), 10), Node: v.Node}
}

func ts(t syncproto.Timestamp) string { return strconv.FormatInt(int64(t), 10) }

// makeVectors draws cases where ties, duplicates and concurrency are
// frequent (few readings, few nodes), plus the edges: the zero version,
// the top of the int64 range, nodes that differ past ASCII.
func makeVectors() vectors {
	rng := rand.New(rand.NewPCG(14, 2026))
	now := syncproto.MakeTimestamp(1_780_000_000_000, 0) // 2026, above 2^53 once packed
	hlcs := []syncproto.Timestamp{0, 1, now, now + 1, now + 65535, now + 65536, math.MaxInt64 - 1, math.MaxInt64}
	nodes := []string{"", "0192f1a0-0000-7000-8000-000000000001", "0192f1a0-0000-7000-8000-000000000002", "serveur", "é", "z", "\uffff", "😀"}
	pick := func() syncproto.Version {
		v := syncproto.Version{HLC: hlcs[rng.IntN(len(hlcs))], Node: nodes[rng.IntN(len(nodes))]}
		if rng.IntN(4) == 0 {
			v = syncproto.Version{}
		}
		return v
	}
	out := vectors{Comment: "Written by go test ./syncproto -run TestVectors -update; read by client-sdk/web's tests. Do not edit by hand."}
	for i := 0; i < 400; i++ {
		held, inc := pick(), pick()
		if inc.IsZero() {
			inc.HLC = now
		}
		prev := pick()
		switch rng.IntN(3) {
		case 0:
			prev = held
		case 1:
			inc = held
		}
		if inc.IsZero() {
			inc = syncproto.Version{HLC: 1, Node: "a"}
		}
		d := syncproto.Decide(held, inc, prev)
		out.Decide = append(out.Decide, decideVector{Held: vv(held), Incoming: vv(inc), Prev: vv(prev),
			Compare: syncproto.Compare(inc, held), Outcome: d.Outcome.String(), Concurrent: d.Concurrent})
	}
	for i := 0; i < 200; i++ {
		last, recv, phys := hlcs[rng.IntN(len(hlcs))], hlcs[rng.IntN(len(hlcs))], syncproto.MakeTimestamp(1_780_000_000_000+rng.Int64N(3), 0)
		if rng.IntN(3) == 0 {
			recv = last + syncproto.Timestamp(rng.Int64N(3))
		}
		out.Next = append(out.Next, nextVector{Last: ts(last), Received: ts(recv), Physical: ts(phys), Next: ts(syncproto.Next(last, recv, phys))})
	}
	return out
}

// TestVectors checks the committed vectors against this implementation
// (or rewrites them with -update).
func TestVectors(t *testing.T) {
	want, err := json.MarshalIndent(makeVectors(), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile(vectorsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (go test ./syncproto -run TestVectors -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what syncproto decides: the merge rule or the clock changed; if on purpose, rerun with -update and make the web SDK agree", vectorsFile)
	}
}
