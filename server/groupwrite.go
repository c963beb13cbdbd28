package server

import (
	"container/heap"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// groupWriter commits the writes of concurrent exchanges together. At
// 17:00 hundreds of devices push at once; committed one by one, every
// push pays its own fsync (synchronous=FULL) and waits for the single
// writer connection in turn, so the last device in line waits for all
// the fsyncs before it. Here one goroutine takes the writes waiting, runs
// each in its own savepoint of one transaction, and commits them with one
// fsync. A write that fails is rolled back to its savepoint alone and
// gets its error; the others are not affected. No answer leaves before
// the commit that made its write durable.
//
// Writes run one after the other inside the group, so each sees the ones
// before it exactly as if they had been committed separately.
//
// The order is fair, not first come first served (issue 11). Taken in
// arrival order, a one-row write that arrived behind eight devices'
// 5,000-cell batches waited for all of them, well over a second. Each
// write states its cost (about the cells it writes) and whose it is (a
// device). It gets a virtual start time, the later of the virtual time
// and the finish time of its device's previous write, and a finish time,
// its start plus its cost; the writer runs next the write that finishes
// first. The virtual time advances, each time a write is taken, by its
// cost divided by the number of devices waiting: what each would have
// got had the writer been shared out evenly (weighted fair queueing).
// Two simpler clocks were measured and dropped: the finish time of the
// write last started (self-clocked fair queueing) made a newcomer wait
// for every big write started in the same round; its start time never
// moved while a crowd of first writes waited, so a day's work kept being
// overtaken by smaller ones (fleet p99 18 s). A small write
// therefore overtakes the big ones queued before it, a device sending
// many writes is served in turn with the others rather than in one run,
// and a big write still runs once the writes that overtook it have used
// up as much cost as it has: nothing waits forever. A group also stops
// taking writes once it holds maxCost of cost or has held the writer for
// maxTime, so a small write never waits for more than the group under
// way (at most one big batch) and its own group of small writes.
type groupWriter struct {
	db *sql.DB // the writer pool (one connection)

	mu      sync.Mutex       // guards what follows
	max     int              // writes per group at most
	maxCost int              // cost per group: the first write is taken whatever its cost, the next only while the sum stays within
	maxTime time.Duration    // the writer time after which a group takes no more writes
	queue   jobHeap          // waiting writes, by virtual finish time
	vtime   int64            // virtual time
	last    map[string]int64 // per key, the finish time of its last write, while above vtime
	active  map[string]int   // per key, its writes in the queue
	seq     uint64           // arrival counter, the tie breaker
	closed  bool
	wake    chan struct{} // a write was queued, or Close was called (buffered, 1)
	done    sync.WaitGroup

	// observe, when set, gets how long each write waited for its turn;
	// observeGroup each group's size. Both are called by the writer.
	observe      func(wait time.Duration)
	observeGroup func(n int)
}

type groupJob struct {
	ctx  context.Context
	key  string // whose write it is: fairness is between keys
	cost int64  // at least 1
	fn   func(tx *sql.Tx) error
	errc chan error
	at   time.Time // when Do was called

	start  int64  // virtual start time
	finish int64  // virtual finish time
	seq    uint64 // arrival order
	index  int    // position in the heap, -1 once taken
}

// costScale is the unit of virtual times: a cell's cost, divided among
// up to a thousand waiting devices, still moves the clock.
const costScale = 1 << 10

// errWriterClosed answers writes submitted while the server shuts down.
var errWriterClosed = errors.New("server is shutting down")

// Defaults of a group's bounds. A 5,000-cell batch holds the writer
// about 125 ms on the machine of BENCHMARKS.md (section 7), so a group
// of small writes is bounded to well under that: the small writes of a
// crowd still share their fsync by the dozen (a day's work is about 200
// cells), and one of them behind the group waits for tens of
// milliseconds, not hundreds.
const (
	defaultGroupCost = 2000
	defaultGroupTime = 50 * time.Millisecond
)

func newGroupWriter(db *sql.DB, max int) *groupWriter {
	g := &groupWriter{db: db, max: max, maxCost: defaultGroupCost, maxTime: defaultGroupTime,
		last: map[string]int64{}, active: map[string]int{}, wake: make(chan struct{}, 1)}
	g.done.Add(1)
	go g.run()
	return g
}

// Do runs fn inside a transaction shared with other writes and returns
// once that transaction is committed (nil) or fn's own error. key says
// whose write it is (a device id; "" for the server's own), cost about
// how many cells it writes. fn must not commit or roll back tx, and must
// not start another write.
func (g *groupWriter) Do(ctx context.Context, key string, cost int, fn func(tx *sql.Tx) error) error {
	job := &groupJob{ctx: ctx, key: key, cost: int64(max(cost, 1)), fn: fn, errc: make(chan error, 1), at: time.Now()}
	if err := g.enqueue(job); err != nil {
		return err
	}
	select {
	case err := <-job.errc:
		return err
	case <-ctx.Done():
		if g.withdraw(job) {
			return ctx.Err()
		}
		// Once taken, the job runs and is answered even if ctx ends:
		// its write may already be part of the group.
		return <-job.errc
	}
}

// enqueue gives job its virtual finish time and queues it.
func (g *groupWriter) enqueue(job *groupJob) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errWriterClosed
	}
	job.start = max(g.vtime, g.last[job.key])
	job.finish = job.start + job.cost*costScale
	g.last[job.key] = job.finish
	g.active[job.key]++
	g.seq++
	job.seq = g.seq
	heap.Push(&g.queue, job)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default: // the writer is already told
	}
	return nil
}

// withdraw takes job out of the queue if the writer has not taken it.
func (g *groupWriter) withdraw(job *groupJob) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if job.index < 0 {
		return false
	}
	heap.Remove(&g.queue, job.index)
	g.leave(job.key)
	return true
}

// next takes the write to run next if it fits in a group that already
// holds n writes of cost used and has held the writer for elapsed, or,
// for the first write of a group (n == 0), whatever its cost. It returns
// nil when none is waiting or the next does not fit.
func (g *groupWriter) next(n int, used int64, elapsed time.Duration) *groupJob {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		return nil
	}
	j := g.queue[0]
	if n > 0 && (n >= g.max || used+j.cost > int64(g.maxCost) || elapsed >= g.maxTime) {
		return nil
	}
	heap.Pop(&g.queue)
	// The virtual time runs as the work would be shared out: serving
	// this write's cost takes that much from each key waiting.
	g.vtime += j.cost * costScale / int64(len(g.active))
	g.leave(j.key)
	if g.last[j.key] <= g.vtime {
		delete(g.last, j.key) // no write of its own above the virtual time
	}
	if len(g.last) > 4*len(g.queue)+1024 {
		for k, f := range g.last {
			if f <= g.vtime {
				delete(g.last, k)
			}
		}
	}
	return j
}

// leave counts one write of key out of the queue.
func (g *groupWriter) leave(key string) {
	if g.active[key]--; g.active[key] <= 0 {
		delete(g.active, key)
	}
}

// Close stops taking writes, waits for the group being written, and
// answers the writes still queued with errWriterClosed.
func (g *groupWriter) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	g.done.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.queue) > 0 {
		heap.Pop(&g.queue).(*groupJob).errc <- errWriterClosed
	}
}

func (g *groupWriter) run() {
	defer g.done.Done()
	for {
		g.mu.Lock()
		closed, waiting := g.closed, len(g.queue) > 0
		g.mu.Unlock()
		if closed {
			return
		}
		if !waiting {
			<-g.wake
			continue
		}
		// No timer: a lone write is not delayed, and a crowd forms
		// groups by itself while the previous group commits.
		g.write()
	}
}

// runningJob is a write of the group under way, with its verdict.
type runningJob struct {
	job *groupJob
	err error
}

// write runs one group, taking its writes one by one while they fit, and
// answers each of them.
func (g *groupWriter) write() {
	var group []runningJob
	fail := func(err error) {
		for _, r := range group {
			if r.err != nil {
				r.job.errc <- r.err
			} else {
				r.job.errc <- err
			}
		}
	}
	// The group's transaction is not tied to any one request: a device
	// that hangs up must not undo the others' writes.
	ctx := context.Background()
	first := g.next(0, 0, 0)
	if first == nil {
		return
	}
	group = append(group, runningJob{job: first})
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		fail(fmt.Errorf("begin write: %w", err))
		return
	}
	start := time.Now()
	var used int64
	for i := 0; ; i++ {
		j := group[i].job
		used += j.cost
		if err := g.runInSavepoint(ctx, tx, &group[i]); err != nil {
			_ = tx.Rollback() // the savepoint's error is the one to report
			fail(fmt.Errorf("write group: %w", err))
			return
		}
		nj := g.next(len(group), used, time.Since(start))
		if nj == nil {
			break
		}
		group = append(group, runningJob{job: nj})
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	if g.observeGroup != nil {
		g.observeGroup(len(group))
	}
	for _, r := range group {
		r.job.errc <- r.err
	}
}

// runInSavepoint runs one write of the group in its own savepoint,
// setting its verdict. The error returned is the savepoint's own, which
// ends the whole group.
func (g *groupWriter) runInSavepoint(ctx context.Context, tx *sql.Tx, r *runningJob) error {
	j := r.job
	if err := j.ctx.Err(); err != nil {
		r.err = err
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT exchange"); err != nil {
		return err
	}
	if g.observe != nil {
		g.observe(time.Since(j.at))
	}
	r.err = runJob(j, tx)
	end := "RELEASE exchange"
	if r.err != nil {
		end = "ROLLBACK TO exchange; RELEASE exchange"
	}
	_, err := tx.ExecContext(ctx, end)
	return err
}

// runJob runs one write, turning a panic into its error so that one bad
// write cannot stop the writer every exchange waits on.
func runJob(j *groupJob, tx *sql.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write failed: %v", r)
		}
	}()
	return j.fn(tx)
}

// jobHeap orders waiting writes by virtual finish time, then arrival.
type jobHeap []*groupJob

func (h jobHeap) Len() int { return len(h) }
func (h jobHeap) Less(a, b int) bool {
	if h[a].finish != h[b].finish {
		return h[a].finish < h[b].finish
	}
	return h[a].seq < h[b].seq
}
func (h jobHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].index, h[b].index = a, b
}
func (h *jobHeap) Push(x any) {
	j := x.(*groupJob)
	j.index = len(*h)
	*h = append(*h, j)
}
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	j.index = -1
	*h = old[:len(old)-1]
	return j
}
