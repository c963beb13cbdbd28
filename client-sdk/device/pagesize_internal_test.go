package device

import (
	"testing"
	"time"

	"github.com/relais-numerique/relais/syncproto"
)

func TestPageSizer(t *testing.T) {
	fast, slow, middling := 10*time.Millisecond, 5*time.Second, time.Second
	def, most := syncproto.DefaultPageLimit, syncproto.MaxPageLimit
	grow := func(n int) int { return min(2*n, most) }
	shrink := func(n int) int { return max(n/2, def) }
	type step struct {
		full bool
		took time.Duration
		want int
	}
	cases := []struct {
		name  string
		fixed int
		steps []step
	}{
		{"fixed by the application", 50, []step{{true, fast, 50}, {true, slow, 50}}},
		{"grows while full pages come fast, up to the cap", 0, []step{
			{true, fast, grow(def)}, {true, fast, grow(grow(def))}, {true, fast, most}, {true, fast, most}}},
		{"a last page does not grow it", 0, []step{{false, fast, def}}},
		{"neither fast nor slow keeps it", 0, []step{{true, fast, grow(def)}, {true, middling, grow(def)}}},
		{"slow halves it, never below the default", 0, []step{
			{true, fast, most}, {true, slow, shrink(most)}, {true, slow, def}, {false, slow, def}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPageSizer(tc.fixed)
			for i, s := range tc.steps {
				p.observe(s.full, s.took)
				if p.limit != s.want {
					t.Fatalf("step %d (full %v, %s): limit %d, want %d", i, s.full, s.took, p.limit, s.want)
				}
			}
		})
	}
}

func TestBatchSizer(t *testing.T) {
	fast, slow := 10*time.Millisecond, 5*time.Second
	cases := []struct {
		name  string
		fixed int
		full  []bool
		took  []time.Duration
		want  []int
	}{
		{"fixed by the application", 7, []bool{true, true}, []time.Duration{fast, slow}, []int{7, 7}},
		{"grows while a backlog goes out fast, up to the most", 0,
			[]bool{true, true, true, true}, []time.Duration{fast, fast, fast, fast},
			[]int{2 * defaultBatch, 4 * defaultBatch, maxBatch, maxBatch}},
		{"the last batch of a backlog does not grow it", 0, []bool{false}, []time.Duration{fast}, []int{defaultBatch}},
		{"a slow link halves it, never below the least", 0,
			[]bool{true, true, true, true}, []time.Duration{fast, slow, slow, slow},
			[]int{2 * defaultBatch, defaultBatch, defaultBatch, defaultBatch}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBatchSizer(tc.fixed)
			for i := range tc.full {
				b.observe(tc.full[i], tc.took[i])
				if b.limit != tc.want[i] {
					t.Fatalf("step %d: limit %d, want %d", i, b.limit, tc.want[i])
				}
			}
		})
	}
	if maxBatch+100 > syncproto.MaxBatchChanges {
		t.Fatalf("an adaptive batch of %d, extended to whole rows, could pass the protocol's %d", maxBatch, syncproto.MaxBatchChanges)
	}
}
