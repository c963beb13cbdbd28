package server

import (
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
// the fsyncs before it. Here one goroutine takes every write waiting, runs
// each in its own savepoint of one transaction, and commits them with one
// fsync. A write that fails is rolled back to its savepoint alone and
// gets its error; the others are not affected. No answer leaves before
// the commit that made its write durable.
//
// Writes run one after the other inside the group, in arrival order, so
// each sees the ones before it exactly as if they had been committed
// separately.
type groupWriter struct {
	db   *sql.DB // the writer pool (one connection)
	max  int     // writes per group at most
	jobs chan *groupJob
	stop chan struct{}
	done sync.WaitGroup
	// observe, when set, gets how long each write waited for its turn;
	// observeGroup each group's size. Both are called by the writer.
	observe      func(wait time.Duration)
	observeGroup func(n int)
}

type groupJob struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	errc chan error
	at   time.Time // when Do was called
}

// errWriterClosed answers writes submitted while the server shuts down.
var errWriterClosed = errors.New("server is shutting down")

func newGroupWriter(db *sql.DB, max int) *groupWriter {
	g := &groupWriter{db: db, max: max, jobs: make(chan *groupJob), stop: make(chan struct{})}
	g.done.Add(1)
	go g.run()
	return g
}

// Do runs fn inside a transaction shared with other writes and returns
// once that transaction is committed (nil) or fn's own error. fn must not
// commit or roll back tx, and must not start another write.
func (g *groupWriter) Do(ctx context.Context, fn func(tx *sql.Tx) error) error {
	job := &groupJob{ctx: ctx, fn: fn, errc: make(chan error, 1), at: time.Now()}
	select {
	case g.jobs <- job:
	case <-g.stop:
		return errWriterClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once taken, the job runs and is answered even if ctx ends: its
	// write may already be part of the group.
	return <-job.errc
}

// Close stops taking writes and waits for the group being written.
func (g *groupWriter) Close() {
	close(g.stop)
	g.done.Wait()
}

func (g *groupWriter) run() {
	defer g.done.Done()
	for {
		var first *groupJob
		select {
		case first = <-g.jobs:
		case <-g.stop:
			return
		}
		group := []*groupJob{first}
		// Everything already waiting joins: no timer, so a lone write
		// is not delayed, and a crowd forms groups by itself while the
		// previous group commits.
	gather:
		for len(group) < g.max {
			select {
			case j := <-g.jobs:
				group = append(group, j)
			default:
				break gather
			}
		}
		if g.observeGroup != nil {
			g.observeGroup(len(group))
		}
		g.write(group)
	}
}

// write runs one group and answers each of its jobs.
func (g *groupWriter) write(group []*groupJob) {
	errs := make([]error, len(group))
	fail := func(err error) {
		for i, j := range group {
			if errs[i] == nil {
				j.errc <- err
			} else {
				j.errc <- errs[i]
			}
		}
	}
	// The group's transaction is not tied to any one request: a device
	// that hangs up must not undo the others' writes.
	ctx := context.Background()
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		fail(fmt.Errorf("begin write: %w", err))
		return
	}
	for i, j := range group {
		if err := j.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT exchange"); err != nil {
			_ = tx.Rollback() // the savepoint's error is the one to report
			fail(fmt.Errorf("write group: %w", err))
			return
		}
		if g.observe != nil {
			g.observe(time.Since(j.at))
		}
		errs[i] = runJob(j, tx)
		end := "RELEASE exchange"
		if errs[i] != nil {
			end = "ROLLBACK TO exchange; RELEASE exchange"
		}
		if _, err := tx.ExecContext(ctx, end); err != nil {
			_ = tx.Rollback() // the savepoint's error is the one to report
			fail(fmt.Errorf("write group: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("commit: %w", err))
		return
	}
	for i, j := range group {
		j.errc <- errs[i]
	}
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
