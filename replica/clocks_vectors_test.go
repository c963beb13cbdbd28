package replica

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
)

var updateClocks = flag.Bool("update", false, "rewrite testdata/clocks_vectors.json from this implementation")

// clocksVectorsFile holds packed clocks blobs (encodeClocks) with the
// versions they pack. The web SDK's tests (client-sdk/web/test/rows.test.ts)
// encode and decode the same lists and must find the same bytes: a
// device's _rows are read by both SDKs' code.
const clocksVectorsFile = "testdata/clocks_vectors.json"

type clocksVector struct {
	// Clocks are [bit, hlc, node, seq], numbers as decimal text (they
	// pass 2^53).
	Clocks [][4]string `json:"clocks"`
	Hex    string      `json:"hex"`
}

type clocksVectors struct {
	Comment string         `json:"comment"`
	Cases   []clocksVector `json:"cases"`
	// Damaged blobs decodeClocks refuses.
	Damaged []string `json:"damaged"`
}

func makeClocksVectors(t testing.TB) clocksVectors {
	rng := rand.New(rand.NewPCG(13, 16))
	out := clocksVectors{Comment: "Written by go test ./replica -run TestClocksVectors -update; read by client-sdk/web's tests. Do not edit by hand."}
	base := int64(1_780_000_000_000) << 16
	hlcs := []func() int64{
		func() int64 { return base + rng.Int64N(1<<20) },
		func() int64 { return base },
		func() int64 { return rng.Int64N(300) },
		func() int64 { return math.MaxInt64 - rng.Int64N(3) },
		func() int64 { return -rng.Int64N(1 << 40) },
	}
	for i := 0; i < 120; i++ {
		n := rng.IntN(8)
		if i == 0 {
			n = 0
		}
		var cs []colClock
		bits := rng.Perm(63)[:n]
		slices.Sort(bits)
		shared := hlcs[rng.IntN(len(hlcs))]()
		for _, b := range bits {
			c := colClock{bit: b, hlc: shared, node: rng.Int64N(5) + 1}
			if rng.IntN(3) == 0 {
				c.hlc = hlcs[rng.IntN(len(hlcs))]()
			}
			if rng.IntN(4) == 0 {
				c.node = rng.Int64N(1 << 33)
			}
			if rng.IntN(2) == 0 {
				c.seq = rng.Int64N(1 << uint(rng.IntN(62)))
			}
			cs = append(cs, c)
		}
		v := clocksVector{Hex: hex.EncodeToString(encodeClocks(cs)), Clocks: [][4]string{}}
		for _, c := range cs {
			v.Clocks = append(v.Clocks, [4]string{strconv.Itoa(c.bit), strconv.FormatInt(c.hlc, 10), strconv.FormatInt(c.node, 10), strconv.FormatInt(c.seq, 10)})
		}
		back, err := decodeClocks(nil, encodeClocks(cs))
		if err != nil || len(back) != len(cs) || (len(cs) > 0 && !slices.Equal(back, cs)) {
			t.Fatalf("case %d: %v decodes to %v (%v)", i, cs, back, err)
		}
		out.Cases = append(out.Cases, v)
	}
	// A varint cut short, one past 64 bits, an entry missing its seq.
	for _, b := range [][]byte{{0x80}, {0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00}, {0x01, 0x02, 0x01}} {
		if _, err := decodeClocks(nil, b); err == nil {
			t.Fatalf("decodeClocks accepted %x", b)
		}
		out.Damaged = append(out.Damaged, hex.EncodeToString(b))
	}
	return out
}

// TestClocksVectors checks the committed vectors against encodeClocks
// and decodeClocks (or rewrites them with -update).
func TestClocksVectors(t *testing.T) {
	want, err := json.MarshalIndent(makeClocksVectors(t), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *updateClocks {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(clocksVectorsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(clocksVectorsFile)
	if err != nil {
		t.Fatalf("%v (go test ./replica -run TestClocksVectors -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what encodeClocks writes; if on purpose, rerun with -update and make the web SDK agree", clocksVectorsFile)
	}
}

// FuzzDecodeClocks: any bytes either decode, and then pack back to
// clocks that decode the same, or are refused as damaged.
func FuzzDecodeClocks(f *testing.F) {
	for _, c := range makeClocksVectors(f).Cases[:20] {
		b, _ := hex.DecodeString(c.Hex)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := decodeClocks(nil, b)
		if err != nil {
			if err != errBadClocks {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		again, err := decodeClocks(nil, encodeClocks(cs))
		if err != nil || !slices.Equal(again, cs) {
			t.Fatalf("%x: %v packs back to %v (%v)", b, cs, again, err)
		}
	})
}
