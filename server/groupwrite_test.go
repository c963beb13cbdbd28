package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relais-numerique/relais/store"
)

// TestGroupWriter: many concurrent writes, some failing, one panicking,
// one whose request is gone: each gets its own verdict, and exactly the
// writes that succeeded are in the database.
func TestGroupWriter(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "g.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.W.Exec("CREATE TABLE t (k INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	g := newGroupWriter(db.W, 8)
	defer g.Close()

	const n = 200
	refused := errors.New("refused")
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i == 13 {
				ctx = gone
			}
			errs[i] = g.Do(ctx, fmt.Sprint("device", i%7), 1+i%50, func(tx *sql.Tx) error {
				if _, err := tx.Exec("INSERT INTO t (k) VALUES (?)", i); err != nil {
					return err
				}
				switch {
				case i == 77:
					panic("boom")
				case i%10 == 3:
					// Written, then refused: the write must not stay.
					return refused
				}
				return nil
			})
		}()
	}
	wg.Wait()
	want := 0
	for i, err := range errs {
		switch {
		case i == 13:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("write %d with its request gone: %v", i, err)
			}
		case i == 77:
			if err == nil {
				t.Errorf("write %d panicked and reported success", i)
			}
		case i%10 == 3:
			if !errors.Is(err, refused) {
				t.Errorf("write %d: %v, want its own refusal", i, err)
			}
		default:
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
			want++
		}
	}
	var got int
	var bad sql.NullInt64
	if err := db.R.QueryRow("SELECT COUNT(*), MAX(CASE WHEN k % 10 = 3 OR k = 77 OR k = 13 THEN k END) FROM t").Scan(&got, &bad); err != nil {
		t.Fatal(err)
	}
	if got != want || bad.Valid {
		t.Fatalf("table holds %d rows (a refused one: %v), want %d", got, bad, want)
	}
}

// TestGroupWriterClosed: a write submitted after Close is refused, not
// left waiting.
func TestGroupWriterClosed(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "g.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := newGroupWriter(db.W, 8)
	g.Close()
	err = g.Do(context.Background(), "device", 1, func(tx *sql.Tx) error { return fmt.Errorf("must not run") })
	if !errors.Is(err, errWriterClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// gatedWriter is a group writer whose first write (the group under way)
// holds it until release is called, so that a test can queue writes
// behind it and know exactly what is waiting when the writer goes on.
type gatedWriter struct {
	*groupWriter
	db      *store.DB
	release func()
}

func newGatedWriter(t *testing.T) *gatedWriter {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "g.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.W.Exec("CREATE TABLE t (k TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	g := newGroupWriter(db.W, 64)
	t.Cleanup(g.Close)
	// Groups end by cost and number only, whatever the machine's speed;
	// the gate's write fills its group, so that none of the writes
	// queued behind it joins it.
	g.maxTime = time.Hour
	started, gate := make(chan struct{}), make(chan struct{})
	go func() {
		_ = g.Do(context.Background(), "gate", g.maxCost, func(*sql.Tx) error {
			close(started)
			<-gate
			return nil
		})
	}()
	<-started
	return &gatedWriter{groupWriter: g, db: db, release: sync.OnceFunc(func() { close(gate) })}
}

// queued waits until n writes wait in the queue (bounded: 10 s).
func (g *gatedWriter) queued(t *testing.T, n int) {
	t.Helper()
	for range 10000 {
		g.mu.Lock()
		got := len(g.queue)
		g.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d writes never queued", n)
}

// TestGroupWriterFairOrder: the order in which writes queued behind a
// busy writer run. Each job is a key and a cost; they are queued in the
// order listed, all before the writer is free. A small write overtakes
// big ones queued before it, keys take turns, and a big write is not
// starved by a stream of small ones: it runs once they have used as much
// cost as it asked for.
func TestGroupWriterFairOrder(t *testing.T) {
	type job struct {
		key  string
		cost int
	}
	big := func(key string) job { return job{key, 5000} }
	cases := []struct {
		name string
		jobs []job
		want []int // indexes into jobs, in the order they must run
	}{
		{"one row behind eight floods",
			[]job{big("a"), big("b"), big("c"), big("d"), big("e"), big("f"), big("g"), big("h"), {"quiet", 11}},
			[]int{8, 0, 1, 2, 3, 4, 5, 6, 7}},
		{"keys take turns",
			[]job{{"a", 10}, {"a", 10}, {"a", 10}, {"b", 10}, {"b", 10}, {"b", 10}},
			[]int{0, 3, 1, 4, 2, 5}},
		{"a device's second big batch waits for the others' first",
			[]job{big("a"), big("a"), big("b"), {"c", 1}},
			[]int{3, 0, 2, 1}},
		{"small writes do not starve a big one",
			append([]job{big("big")}, slices.Repeat([]job{{"chatty", 1000}}, 8)...),
			[]int{1, 2, 3, 4, 0, 5, 6, 7, 8}},
		{"same cost, other keys: arrival order",
			[]job{{"a", 200}, {"b", 200}, {"c", 200}},
			[]int{0, 1, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGatedWriter(t)
			var mu sync.Mutex
			var order []int
			var wg sync.WaitGroup
			for i, j := range tc.jobs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := g.Do(context.Background(), j.key, j.cost, func(*sql.Tx) error {
						mu.Lock()
						order = append(order, i)
						mu.Unlock()
						return nil
					})
					if err != nil {
						t.Errorf("write %d: %v", i, err)
					}
				}()
				g.queued(t, i+1) // queued in the listed order
			}
			g.release()
			wg.Wait()
			if !slices.Equal(order, tc.want) {
				t.Errorf("ran in order %v, want %v", order, tc.want)
			}
		})
	}
}

// TestGroupWriterSmallNotHeldByBig: a one-row write queued after several
// 5,000-cell writes is committed, and its caller answered, before any of
// them runs: it is not in their group, so it does not wait for them. The
// big writes check, from a reader connection, that the small write is
// already committed when each of them starts.
func TestGroupWriterSmallNotHeldByBig(t *testing.T) {
	g := newGatedWriter(t)
	const bigs = 4
	var wg sync.WaitGroup
	committed := make([]bool, bigs)
	smallDone := make(chan struct{})
	for i := range bigs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.Do(context.Background(), fmt.Sprint("flood", i), 5000, func(tx *sql.Tx) error {
				var n int
				if err := g.db.R.QueryRow("SELECT COUNT(*) FROM t WHERE k = 'small'").Scan(&n); err != nil {
					return err
				}
				committed[i] = n == 1
				_, err := tx.Exec("INSERT INTO t (k) VALUES (?)", fmt.Sprint("big", i))
				return err
			})
			if err != nil {
				t.Errorf("big write %d: %v", i, err)
			}
		}()
		g.queued(t, i+1)
	}
	go func() {
		defer close(smallDone)
		err := g.Do(context.Background(), "quiet", 1, func(tx *sql.Tx) error {
			_, err := tx.Exec("INSERT INTO t (k) VALUES ('small')")
			return err
		})
		if err != nil {
			t.Errorf("small write: %v", err)
		}
	}()
	g.queued(t, bigs+1)
	g.release()
	<-smallDone
	wg.Wait()
	for i, ok := range committed {
		if !ok {
			t.Errorf("big write %d ran before the small write queued after it was committed", i)
		}
	}
}

// TestGroupWriterBounds: a group takes writes while their cost fits in
// maxCost and their number in max; a write bigger than maxCost runs in a
// group of its own. Groups are read from observeGroup.
func TestGroupWriterBounds(t *testing.T) {
	cases := []struct {
		name    string
		costs   []int
		maxTime time.Duration // when not zero
		want    []int         // sizes of the groups after the gate's
	}{
		{"small writes share a group", []int{500, 500, 500, 500}, 0, []int{4}},
		{"cost splits groups, cheapest first", []int{1000, 900, 1000, 100}, 0, []int{3, 1}},
		{"a big write is alone", []int{10, 5000, 10}, 0, []int{2, 1}},
		{"number splits groups", slices.Repeat([]int{1}, 70), 0, []int{64, 6}},
		{"a group that held the writer its time takes no more", []int{1, 1, 1}, time.Nanosecond, []int{1, 1, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGatedWriter(t)
			if tc.maxTime > 0 {
				g.mu.Lock() // the writer reads it between two writes
				g.maxTime = tc.maxTime
				g.mu.Unlock()
			}
			var mu sync.Mutex
			var sizes []int
			g.observeGroup = func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }
			var wg sync.WaitGroup
			for i, c := range tc.costs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Distinct keys: only the costs decide.
					if err := g.Do(context.Background(), fmt.Sprint("d", i), c, func(*sql.Tx) error { return nil }); err != nil {
						t.Errorf("write %d: %v", i, err)
					}
				}()
				g.queued(t, i+1)
			}
			g.release()
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if len(sizes) == 0 || sizes[0] != 1 {
				t.Fatalf("groups %v: the gate's group is not first and alone", sizes)
			}
			if !slices.Equal(sizes[1:], tc.want) {
				t.Errorf("groups after the gate %v, want %v", sizes[1:], tc.want)
			}
		})
	}
}

// TestGroupWriterNewcomer: a small write that arrives while one of a
// round of big writes runs goes next, not after the whole round. (With
// the virtual time taken from finish times, all the round's writes
// finished at the virtual time the newcomer started from, and it waited
// for every one of them.)
func TestGroupWriterNewcomer(t *testing.T) {
	g := newGatedWriter(t)
	const bigs = 8
	var mu sync.Mutex
	var order []string
	running, resume := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for i := range bigs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.Do(context.Background(), fmt.Sprint("flood", i), 5000, func(*sql.Tx) error {
				mu.Lock()
				order = append(order, fmt.Sprint("flood", i))
				first := len(order) == 1
				mu.Unlock()
				if first {
					close(running)
					<-resume
				}
				return nil
			})
			if err != nil {
				t.Errorf("big write %d: %v", i, err)
			}
		}()
		g.queued(t, i+1)
	}
	g.release()
	<-running // the round has started: one big write runs
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := g.Do(context.Background(), "quiet", 11, func(*sql.Tx) error {
			mu.Lock()
			order = append(order, "quiet")
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Errorf("small write: %v", err)
		}
	}()
	g.queued(t, bigs) // the seven other big writes and the newcomer
	close(resume)
	wg.Wait()
	if i := slices.Index(order, "quiet"); i != 1 {
		t.Errorf("the newcomer ran at position %d of %v, want 1 (right after the big write under way)", i, order)
	}
}

// TestGroupWriterStreamOfSmaller: a write of 300 cells is not overtaken
// for ever by a stream of 100-cell writes of other devices, each arriving
// while the one before runs (a fleet at 17:00: day's works of different
// sizes). The virtual time must move as they are served; when it moved
// only with the writes' start times, every newcomer started where the
// 300-cell write did and finished before it, and it waited for the whole
// stream.
func TestGroupWriterStreamOfSmaller(t *testing.T) {
	g := newGatedWriter(t)
	const stream = 40
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	var newcomer func(i int)
	newcomer = func(i int) {
		defer wg.Done()
		err := g.Do(context.Background(), fmt.Sprint("small", i), 100, func(*sql.Tx) error {
			mu.Lock()
			order = append(order, fmt.Sprint("small", i))
			mu.Unlock()
			if i+1 < stream {
				// The next one arrives while this one runs.
				g.mu.Lock()
				before := len(g.queue)
				g.mu.Unlock()
				wg.Add(1)
				go newcomer(i + 1)
				g.queued(t, before+1)
			}
			return nil
		})
		if err != nil {
			t.Errorf("small write %d: %v", i, err)
		}
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		err := g.Do(context.Background(), "day", 300, func(*sql.Tx) error {
			mu.Lock()
			order = append(order, "day")
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Errorf("the 300-cell write: %v", err)
		}
	}()
	g.queued(t, 1)
	go newcomer(0)
	g.queued(t, 2)
	g.release()
	wg.Wait()
	if i := slices.Index(order, "day"); i < 0 || i > 8 {
		t.Errorf("the 300-cell write ran at position %d of %d, want within the first 8", i, len(order))
	}
}
