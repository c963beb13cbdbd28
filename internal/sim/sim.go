// Package sim is Relais's deterministic fault simulation: one real server
// (its Fiber app, exchange code and SQLite file) and several real device
// replicas (SDK, capture triggers, SQLite files) talk over an in-memory
// network that loses, duplicates, delays and reorders messages, while
// devices and the server restart and device clocks run wrong. Every
// choice comes from one seeded random source, so a seed replays the same
// schedule. Most devices are an administrator's; in two schedules out of
// three a conseillère's device joins, which writes rows the server
// refuses (naming someone else or no one, structures, rows of others),
// and any device may write, as an older app lacking a rule would, a value
// that breaks a domain rule; refused rows are then retried or given up.
// After the faults stop and every device has synced to quiescence, Run
// checks the invariants of docs/DESIGN.md: identical replicas (the
// conseillère's holding exactly her rows), no acknowledged write lost,
// every superseded concurrent write in the conflict log, no acknowledged
// change left in an outbox, nothing applied twice, and every refused
// value on the server or in its device's rejected list.
//
// What is not under the seed's control is the wall clock: HLC readings
// are real milliseconds (shifted by each device's configured skew), so two
// replays give the same schedule and the same faults but not the same
// timestamps. Schedules are short and skews are seconds or minutes, so
// the order of writes, and so the winners, replay as well in practice.
package sim

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/relais-numerique/relais/internal/relaistest"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// Config shapes one simulated run.
type Config struct {
	Seed uint64
	// Devices is the number of devices, 3 to 8 (drawn from the seed when 0).
	Devices int
	// Steps is the number of operations before quiescence (drawn when 0).
	Steps int
	// Template holds a prepared server and logged-in devices (see
	// NewTemplate); each run copies its files instead of paying for
	// migrations and password hashing again.
	Template *Template
	// Dir is where this run's files go; it is emptied first.
	Dir string
	// Trace, when set, receives the schedule step by step.
	Trace io.Writer
	// Servers is 2 for two servers on one database, as several servers
	// behind a load balancer run (issue 15): each exchange reaches either
	// at random, each writes under a node of its own, and a server
	// restart stops one while the other serves. Otherwise one server.
	// The servers share the template's store: its SQLite file copied, or,
	// for a template made by NewTemplateOn, a PostgreSQL database copied
	// by PostgreSQL for the run.
	Servers int
}

// Result is what a run did and what it found.
type Result struct {
	Seed       uint64
	Devices    int
	Steps      int
	Exchanges  int
	Writes     int
	Faults     map[string]int
	Refusals   map[string]int
	Restarts   int // device restarts
	ServerUps  int // server restarts
	Batches    int // batches the server acknowledged
	Conflicts  int // rows in the server's conflict log
	Rejected   int // changes the server refused for their content (rules, after concurrent writes)
	Erasures   int // beneficiaries erased, by the server or from a device
	Violations []string

	// BySecond are the exchanges the second server of a two-server run
	// answered.
	BySecond int
}

// Failed reports whether an invariant was broken.
func (r *Result) Failed() bool { return len(r.Violations) > 0 }

// The bound the simulated server enforces on device clocks, and the skews
// devices get: within the bound (behind or slightly ahead), and, for one
// device in some schedules, beyond it.
const (
	maxClockAhead = time.Minute
	beyondSkew    = 3 * time.Minute
)

// Device is one simulated device.
type Device struct {
	name        string
	node        string
	path        string
	r           *device.Replica
	skew        time.Duration
	beyondBound bool
	link        *link
	ackSeen     map[string]bool // batch ids whose ack reached this device
	// owner is set on the conseillère's device: her user id. She writes
	// under the scope rules, and her replica holds her rows only.
	owner string
}

type batchKey struct{ node, id string }

type batchInfo struct {
	dev     *Device
	changes []syncproto.Change
	answer  []byte // first answer's (applied, conflicts, refusals), to compare re-deliveries
	// refused are the rows the server refused in the batch, by (table,
	// primary key): their changes were acknowledged but not applied.
	refused map[syncproto.RowKey]bool
}

// World is one run's server, devices and network.
type World struct {
	cfg     Config
	rng     *rand.Rand
	ctx     context.Context
	dir     string
	srvCfg  server.Config
	srv     *server.Server
	shiftMs atomic.Int64 // how far the server's clock is moved ahead of the wall clock
	devs    []*Device
	rows    []rowRef
	held    []heldRequest
	step    int
	faulty  bool
	batches map[batchKey]*batchInfo

	refusals   map[string]int
	faults     map[string]int
	violations []string
	res        Result

	// erased are beneficiaries erased by the server (the administrator's
	// command), erasedOnDevice those erased from a device's application.
	erased, erasedOnDevice map[string]bool
	// admin is the administrators' user id (every device but the
	// conseillère's is logged in as an administrator).
	admin string
	// settled are the refused rows retried or dismissed on a device:
	// their refused values left its rejected list by her choice.
	settled map[settledKey]bool

	// obsMu serialises what the wire observer records, and logMu the
	// trace, during the steps where devices sync concurrently.
	obsMu, logMu sync.Mutex

	// second is the other server of a two-server run (nil otherwise), on
	// the same database; pick chooses which server an exchange reaches,
	// from a source of its own so that one-server runs replay as before.
	second    *server.Server
	secondCfg server.Config
	pickMu    sync.Mutex
	pick      *rand.Rand
	bySecond  atomic.Int64
}

type rowRef struct{ table, id string }

// settledKey names one refused change (its cell and version) that a
// device's conseillère retried or dismissed.
type settledKey struct {
	table, pk, col string
	ver            syncproto.Version
}

func (w *World) tracef(format string, args ...any) {
	if w.cfg.Trace != nil {
		w.logMu.Lock()
		fmt.Fprintf(w.cfg.Trace, format+"\n", args...)
		w.logMu.Unlock()
	}
}

func (w *World) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.tracef("  VIOLATION %s", msg)
	w.logMu.Lock()
	defer w.logMu.Unlock()
	if len(w.violations) < 50 {
		w.violations = append(w.violations, msg)
	}
}

// drawFault picks what the network does to the next exchange: nothing
// once the faults have stopped, otherwise mostly nothing.
func (w *World) drawFault() fault {
	if !w.faulty {
		return deliver
	}
	var f fault
	switch n := w.rng.IntN(100); {
	case n < 8:
		f = dropRequest
	case n < 16:
		f = dropAnswer
	case n < 22:
		f = duplicate
	case n < 27:
		f = delayRequest
	case n < 32:
		f = replayLater
	default:
		f = deliver
	}
	if f != deliver {
		w.faults[f.String()]++
	}
	return f
}

func (w *World) serverNow() time.Time {
	return time.Now().Add(time.Duration(w.shiftMs.Load()) * time.Millisecond)
}

// startServer starts (or restarts) the server on the run's data directory.
func (w *World) startServer() error {
	srv, err := server.New(w.ctx, w.srvCfg)
	if err != nil {
		return fmt.Errorf("sim: start server: %w", err)
	}
	w.srv = srv
	return nil
}

func (w *World) stopServer() error {
	if w.srv == nil {
		return nil
	}
	err := w.srv.Close()
	w.srv = nil
	if err != nil {
		return fmt.Errorf("sim: stop server: %w", err)
	}
	return nil
}

// startSecond and stopSecond do the same for the second server.
func (w *World) startSecond() error {
	srv, err := server.New(w.ctx, w.secondCfg)
	if err != nil {
		return fmt.Errorf("sim: start the second server: %w", err)
	}
	w.second = srv
	return nil
}

func (w *World) stopSecond() error {
	if w.second == nil {
		return nil
	}
	err := w.second.Close()
	w.second = nil
	if err != nil {
		return fmt.Errorf("sim: stop the second server: %w", err)
	}
	return nil
}

// server returns the server an exchange reaches: in a two-server run,
// either of those running, at random; nil when none runs.
func (w *World) server() *server.Server {
	if w.second == nil {
		return w.srv
	}
	if w.srv == nil {
		return w.second
	}
	w.pickMu.Lock()
	defer w.pickMu.Unlock()
	if w.pick.IntN(2) == 0 {
		return w.srv
	}
	return w.second
}

// serverNode says whether node is one of the servers' own.
func (w *World) serverNode(node string) bool {
	return (w.srv != nil && node == w.srv.Node()) || (w.second != nil && node == w.second.Node())
}

func (w *World) openDevice(d *Device) error {
	r, err := device.Open(w.ctx, d.path, device.Options{
		HTTPClient: &http.Client{Transport: d.link},
		// One attempt per exchange: the simulation decides when a device
		// tries again, instead of the SDK sleeping through its backoff.
		RetryFor:  time.Nanosecond,
		BatchSize: 1 + w.rng.IntN(12),
		PageLimit: 1 + w.rng.IntN(25),
		ClockSkew: d.skew,
	})
	if err != nil {
		return fmt.Errorf("sim: open device %s: %w", d.name, err)
	}
	d.r = r
	d.node = r.Node()
	return nil
}

// Run plays one schedule and checks the invariants.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	w := &World{
		cfg: cfg, ctx: ctx,
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		batches:  map[batchKey]*batchInfo{},
		refusals: map[string]int{},
		faults:   map[string]int{},
		erased:   map[string]bool{}, erasedOnDevice: map[string]bool{},
		settled: map[settledKey]bool{},
	}
	n := cfg.Devices
	if n == 0 {
		// 3 to 8 devices, fewer more often: most conflicts need only
		// three, and each device costs an open per restart.
		n = 3 + min(w.rng.IntN(6), w.rng.IntN(6))
	}
	if n > len(cfg.Template.devices) {
		return nil, fmt.Errorf("sim: template has %d devices, run wants %d", len(cfg.Template.devices), n)
	}
	steps := cfg.Steps
	if steps == 0 {
		steps = 15 + w.rng.IntN(45)
	}
	w.res = Result{Seed: cfg.Seed, Devices: n, Steps: steps}
	w.tracef("seed %d: %d devices, %d steps", cfg.Seed, n, steps)
	if err := os.RemoveAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("sim: clean %s: %w", cfg.Dir, err)
	}
	w.dir = cfg.Dir
	storeURL, err := cfg.Template.copyTo(ctx, cfg.Dir, n)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cfg.Dir)
	if storeURL != "" {
		defer func() { _ = cfg.Template.dropStore(context.WithoutCancel(ctx), storeURL) }()
	}

	w.srvCfg = server.Config{
		DataDir:       filepath.Join(cfg.Dir, "server"),
		Store:         storeURL,
		MaxClockAhead: maxClockAhead,
		AccessTTL:     templateTokenTTL,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:           w.serverNow,
	}
	if err := w.startServer(); err != nil {
		return nil, err
	}
	defer func() { _ = w.stopServer() }()
	if cfg.Servers == 2 {
		w.pick = rand.New(rand.NewPCG(cfg.Seed, 2))
		w.secondCfg = w.srvCfg
		// A node of its own: two servers stamping writes under one node
		// could give two different writes the same version.
		w.secondCfg.Node = fmt.Sprintf("00000000-0000-4000-8000-%012x", cfg.Seed%(1<<48))
		if err := w.startSecond(); err != nil {
			return nil, err
		}
		defer func() { _ = w.stopSecond() }()
	}

	// Device clocks: most within the bound (behind, or a little ahead),
	// and in a third of the schedules one device beyond it.
	beyond := -1
	if w.rng.IntN(3) == 0 {
		beyond = w.rng.IntN(n)
	}
	for i := 0; i < n; i++ {
		d := &Device{name: fmt.Sprintf("d%d", i), path: filepath.Join(cfg.Dir, fmt.Sprintf("d%d.db", i)), ackSeen: map[string]bool{}}
		d.link = &link{w: w, dev: d}
		switch {
		case i == beyond:
			d.skew, d.beyondBound = beyondSkew, true
		case w.rng.IntN(2) == 0:
			d.skew = time.Duration(w.rng.IntN(int(maxClockAhead/time.Millisecond)*3/2)-int(maxClockAhead/time.Millisecond)) * time.Millisecond
		}
		if err := w.openDevice(d); err != nil {
			return nil, err
		}
		w.tracef("device %s node %s skew %s", d.name, d.node, d.skew)
		w.devs = append(w.devs, d)
	}
	// In two schedules out of three a conseillère's device joins, whose
	// writes include what the server refuses (a row naming someone else
	// or no one, a structure, a row of someone else). In half of those
	// her device knows her role and refuses such writes itself; in the
	// other half it was logged in by an older app, does not know it, and
	// the server refuses them.
	w.admin = cfg.Template.admin
	if w.rng.IntN(3) > 0 {
		d := &Device{name: "c", path: filepath.Join(cfg.Dir, conseillereDevice), ackSeen: map[string]bool{}, owner: cfg.Template.conseillere}
		d.link = &link{w: w, dev: d}
		if err := w.openDevice(d); err != nil {
			return nil, err
		}
		checks := w.rng.IntN(2) == 0
		if !checks {
			if _, err := d.r.DB().ExecContext(ctx, "UPDATE _device SET role = NULL"); err != nil {
				return nil, fmt.Errorf("sim: %w", err)
			}
		}
		w.tracef("device %s (conseillère) node %s, owner checks on the device: %v", d.name, d.node, checks)
		w.devs = append(w.devs, d)
	}
	defer func() {
		for _, d := range w.devs {
			if d.r != nil {
				d.r.Close()
			}
		}
	}()

	w.faulty = true
	for w.step = 0; w.step < steps; w.step++ {
		if err := w.doStep(); err != nil {
			return nil, fmt.Errorf("sim: seed %d step %d: %w", cfg.Seed, w.step, err)
		}
		if err := w.checkOutboxes(); err != nil {
			return nil, err
		}
	}
	w.faulty = false
	if err := w.quiesce(); err != nil {
		return nil, fmt.Errorf("sim: seed %d quiescence: %w", cfg.Seed, err)
	}
	if err := w.checkFinal(); err != nil {
		return nil, fmt.Errorf("sim: seed %d final check: %w", cfg.Seed, err)
	}
	w.res.Faults, w.res.Refusals, w.res.Violations = w.faults, w.refusals, w.violations
	w.res.BySecond = int(w.bySecond.Load())
	return &w.res, nil
}

// doStep plays one operation chosen by the seed.
func (w *World) doStep() error {
	d := w.devs[w.rng.IntN(len(w.devs))]
	switch n := w.rng.IntN(100); {
	case n < 42:
		return w.write(d)
	case n < 72:
		w.sync(d)
		return nil
	case n < 76:
		w.syncAll()
		return nil
	case n < 79:
		return w.erase(d)
	case n < 86:
		return w.deliverHeld()
	case n < 89:
		return w.breakRule(d)
	case n < 93:
		return w.settleRejected(d)
	case n < 98:
		w.tracef("step %d: restart %s", w.step, d.name)
		w.res.Restarts++
		if err := d.r.Close(); err != nil {
			return fmt.Errorf("close %s: %w", d.name, err)
		}
		d.r = nil
		return w.openDevice(d)
	default:
		w.res.ServerUps++
		if w.second != nil && w.rng.IntN(2) == 0 {
			w.tracef("step %d: restart the second server", w.step)
			if err := w.stopSecond(); err != nil {
				return err
			}
			return w.startSecond()
		}
		w.tracef("step %d: restart server", w.step)
		if err := w.stopServer(); err != nil {
			return err
		}
		return w.startServer()
	}
}

func (w *World) sync(d *Device) {
	rep, err := d.r.Sync(w.ctx)
	w.res.Exchanges += rep.Exchanges
	w.res.Rejected += rep.Rejected
	w.tracef("step %d: sync %s: %+v err=%v", w.step, d.name, rep, err)
}

// syncAll makes every device sync at the same time, so the server runs
// concurrent exchanges for real. The network delivers faithfully during
// this step: a fault drawn from several goroutines would make the seed's
// draws depend on scheduling.
func (w *World) syncAll() {
	w.tracef("step %d: all devices sync at once", w.step)
	w.faulty = false
	defer func() { w.faulty = true }()
	type out struct {
		rep device.Report
		err error
	}
	outs := make([]out, len(w.devs))
	var wg sync.WaitGroup
	for i, d := range w.devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i].rep, outs[i].err = d.r.Sync(w.ctx)
		}()
	}
	wg.Wait()
	for i, o := range outs {
		w.res.Exchanges += o.rep.Exchanges
		w.res.Rejected += o.rep.Rejected
		w.tracef("  %s: %+v err=%v", w.devs[i].name, o.rep, o.err)
	}
}

// erase erases a beneficiary, half the time as the server's administrator
// command, half the time from a device's application.
func (w *World) erase(d *Device) error {
	var ids []string
	for _, r := range w.rows {
		if r.table == "beneficiaire" {
			ids = append(ids, r.id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	id := ids[w.rng.IntN(len(ids))]
	if w.rng.IntN(2) == 0 {
		err := w.server().EraseBeneficiaire(w.ctx, id)
		w.tracef("step %d: server erases beneficiaire %s: %v", w.step, id, err)
		if syncproto.CodeOf(err) == syncproto.CodeNotFound {
			return nil
		}
		if err != nil {
			return fmt.Errorf("server erasure: %w", err)
		}
		w.erased[id] = true
		w.res.Erasures++
		return nil
	}
	err := domain.EraseOnDevice(w.ctx, d.r.DB(), id)
	w.tracef("step %d: %s erases beneficiaire %s: %v", w.step, d.name, id, err)
	if err != nil {
		if strings.Contains(err.Error(), "no such beneficiary") {
			return nil
		}
		// The row on this device breaks a rule, written by an older app
		// (breakRule) and not yet put back by the server's refusal: the
		// device's rule triggers refuse the erasure's update, in French,
		// and nothing is written (campaign of issue 12, seed 120145).
		if strings.Contains(err.Error(), "relais: rule") {
			return nil
		}
		return err
	}
	w.erasedOnDevice[id] = true
	w.res.Erasures++
	return nil
}

// deliverHeld lets one delayed or replayed request arrive now, out of its
// order; its answer goes nowhere (the device stopped waiting long ago).
func (w *World) deliverHeld() error {
	if len(w.held) == 0 {
		return nil
	}
	i := w.rng.IntN(len(w.held))
	h := w.held[i]
	w.held = append(w.held[:i], w.held[i+1:]...)
	w.tracef("step %d: late delivery of %s's request from step %d", w.step, h.dev.name, h.step)
	_, err := w.serve(h.dev, h.req, false)
	return err
}

// quiesce stops the faults, lets the held requests arrive, sets every
// clock right and moves the server's clock past the one device that ran
// beyond the bound (its writes were refused, as designed, until real time
// catches up with their stamps), then syncs every device until a full
// round moves nothing.
func (w *World) quiesce() error {
	w.tracef("quiescence")
	var beyond *Device
	for _, d := range w.devs {
		if d.beyondBound {
			beyond = d
		}
	}
	if beyond != nil && w.rng.IntN(2) == 0 {
		// The conseillère sets her tablet's date right: its pending
		// writes, refused so far, are stamped again and go through. A
		// day later, requests the network held all along arrive, the
		// tablet's old ones with their old stamps among them.
		w.tracef("the date of %s is set right", beyond.name)
		if err := beyond.r.Close(); err != nil {
			return fmt.Errorf("close %s: %w", beyond.name, err)
		}
		beyond.skew = 0
		if err := w.openDevice(beyond); err != nil {
			return err
		}
		if err := w.settle(); err != nil {
			return err
		}
		w.shiftMs.Store(int64((beyondSkew + time.Minute) / time.Millisecond))
		w.tracef("a day later")
	} else if beyond != nil {
		// Real time catches up with the tablet's stamps.
		w.shiftMs.Store(int64((beyondSkew + time.Minute) / time.Millisecond))
	}
	for len(w.held) > 0 {
		if err := w.deliverHeld(); err != nil {
			return err
		}
	}
	return w.settle()
}

// settle syncs every device until a full round moves nothing.
func (w *World) settle() error {
	const maxRounds = 12
	for round := 0; round < maxRounds; round++ {
		moved := false
		for _, d := range w.devs {
			rep, err := d.r.Sync(w.ctx)
			w.res.Exchanges += rep.Exchanges
			w.res.Rejected += rep.Rejected
			w.tracef("round %d: sync %s: %+v err=%v", round, d.name, rep, err)
			// A refused row does not stop a sync: the rest of its batch
			// and the pull go on.
			if err != nil {
				return fmt.Errorf("sync %s with a perfect network: %w", d.name, err)
			}
			if rep.Pushed > 0 || rep.Pulled > 0 || rep.Rejected > 0 {
				moved = true
			}
		}
		if !moved {
			return nil
		}
	}
	return fmt.Errorf("still moving after %d rounds of syncing every device", maxRounds)
}

// write makes one local write on d with plain SQL, as an application would.
func (w *World) write(d *Device) error {
	db := d.r.DB()
	var q string
	var args []any
	op := w.rng.IntN(100)
	switch {
	case op < 25 || len(w.rows) == 0:
		t := w.pickTable()
		id := newID(w.rng)
		cols, vals := w.rowValues(t)
		cols, vals = w.owned(d, t, cols, vals)
		q = fmt.Sprintf("INSERT INTO %s (id, %s) VALUES (?%s)", t, strings.Join(cols, ", "), strings.Repeat(", ?", len(cols)))
		args = append([]any{id}, vals...)
		w.rows = append(w.rows, rowRef{t, id})
	case op < 80:
		row := w.pickRow()
		col, val := w.cellValue(row.table)
		if d.owner != "" && row.table != "structure" && w.rng.IntN(10) == 0 {
			col, val = "mediateur_id", w.admin // handing her row over
		}
		q = fmt.Sprintf("UPDATE %s SET %s = ? WHERE id = ?", row.table, col)
		args = []any{val, row.id}
	case op < 90:
		row := w.pickRow()
		q = fmt.Sprintf("DELETE FROM %s WHERE id = ?", row.table)
		args = []any{row.id}
	default:
		// Re-create a row (it may exist here, and then the insert fails
		// like it would in the application).
		row := w.pickRow()
		cols, vals := w.rowValues(row.table)
		if d.owner == "" && row.table != "structure" {
			// An application re-creating a record keeps its owner: an
			// INSERT without it would hand the row to no one, and
			// narrowing who sees a row does not take it back from the
			// conseillère's tablet (README, Scopes), which the final
			// check could not tell from a row left there by mistake.
			owner, err := relaistest.RowValue(w.ctx, db, row.table, row.id, "mediateur_id")
			if err != nil {
				return fmt.Errorf("%s: read owner: %w", d.name, err)
			}
			if owner != nil {
				cols, vals = append(cols, "mediateur_id"), append(vals, relaistest.Text(owner))
			}
		}
		cols, vals = w.owned(d, row.table, cols, vals)
		q = fmt.Sprintf("INSERT INTO %s (id, %s) VALUES (?%s)", row.table, strings.Join(cols, ", "), strings.Repeat(", ?", len(cols)))
		args = append([]any{row.id}, vals...)
	}
	res, err := db.ExecContext(w.ctx, q, args...)
	if err != nil {
		// The application's write is refused (a row that exists, a
		// domain rule, an owner the device knows is wrong): nothing was
		// written, as in the application.
		if strings.Contains(err.Error(), "UNIQUE constraint failed") || strings.Contains(err.Error(), "relais: ") {
			w.tracef("step %d: %s: %s %v: refused (%v)", w.step, d.name, q, args, err)
			return nil
		}
		return fmt.Errorf("%s: %s: %w", d.name, q, err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		w.res.Writes++
	}
	w.tracef("step %d: %s: %s %v (%d rows)", w.step, d.name, q, args, n)
	return nil
}

// owned adds, on the conseillère's device, the owner of a new row of an
// owned table: mostly hers, sometimes an administrator's (a bad owner),
// sometimes none (filled with hers by a device that knows her, refused by
// the server otherwise).
func (w *World) owned(d *Device, table string, cols []string, vals []any) ([]string, []any) {
	if d.owner == "" || table == "structure" {
		return cols, vals
	}
	switch n := w.rng.IntN(20); {
	case n < 14:
		return append(cols, "mediateur_id"), append(vals, d.owner)
	case n < 17:
		return append(cols, "mediateur_id"), append(vals, w.admin)
	}
	return cols, vals
}

// breakRule makes, on d, a write that breaks a domain rule, as an older
// version of the application would whose device had not the rule yet:
// the rule triggers are dropped for the write (the erasure triggers
// stay), and put back by reopening the replica. The server refuses the
// row with invalid_row, and the device must put it back.
func (w *World) breakRule(d *Device) error {
	if len(w.rows) == 0 {
		return nil
	}
	row := w.pickRow()
	var q string
	switch row.table {
	case "activite":
		q = "UPDATE activite SET duree = 5000 WHERE id = ?"
	case "beneficiaire":
		q = "UPDATE beneficiaire SET annee_naissance = 1850 WHERE id = ?"
	default:
		return nil
	}
	db := d.r.DB()
	rows, err := db.QueryContext(w.ctx, `SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '\_check\_rule\_%' ESCAPE '\' AND name NOT LIKE '%effacement%'`)
	if err != nil {
		return fmt.Errorf("%s: read rule triggers: %w", d.name, err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		if _, err := db.ExecContext(w.ctx, `DROP TRIGGER "`+n+`"`); err != nil {
			return fmt.Errorf("%s: drop %s: %w", d.name, n, err)
		}
	}
	res, err := db.ExecContext(w.ctx, q, row.id)
	if err != nil && !strings.Contains(err.Error(), "relais: ") {
		return fmt.Errorf("%s: %s: %w", d.name, q, err)
	}
	var n int64
	if err == nil {
		n, _ = res.RowsAffected()
	}
	w.tracef("step %d: %s, with an app that lacks the rules: %s %s (%d rows, %v)", w.step, d.name, q, row.id, n, err)
	if err := d.r.Close(); err != nil {
		return fmt.Errorf("close %s: %w", d.name, err)
	}
	d.r = nil
	return w.openDevice(d)
}

// settleRejected plays the conseillère's answer to a refused change on
// d: she gives it up, or sends its row again as it was (which the device
// may refuse at once, when it knows why).
func (w *World) settleRejected(d *Device) error {
	list, err := d.r.Rejected(w.ctx)
	if err != nil || len(list) == 0 {
		return err
	}
	j := list[w.rng.IntN(len(list))]
	// The refused changes of the row, which leave the list with it.
	var keys []settledKey
	rows, err := d.r.DB().QueryContext(w.ctx, "SELECT col, hlc, node FROM _rejected WHERE tbl = ? AND pk = ?", j.Table, j.PK)
	if err != nil {
		return fmt.Errorf("%s: read rejected: %w", d.name, err)
	}
	for rows.Next() {
		k := settledKey{table: j.Table, pk: j.PK}
		var hlc int64
		if err := rows.Scan(&k.col, &hlc, &k.ver.Node); err != nil {
			rows.Close()
			return err
		}
		k.ver.HLC = syncproto.Timestamp(hlc)
		keys = append(keys, k)
	}
	rows.Close()
	settle := func() {
		for _, k := range keys {
			w.settled[k] = true
		}
	}
	if w.rng.IntN(2) == 0 {
		if err := d.r.Dismiss(w.ctx, j.ID); err != nil {
			return fmt.Errorf("%s: dismiss: %w", d.name, err)
		}
		settle()
		w.tracef("step %d: %s dismisses refused %s %s", w.step, d.name, j.Table, j.PK)
		return nil
	}
	err = d.r.Retry(w.ctx, j.ID, nil)
	w.tracef("step %d: %s retries refused %s %s: %v", w.step, d.name, j.Table, j.PK, err)
	switch {
	case err == nil:
		settle()
	case !strings.Contains(err.Error(), "relais: ") && !strings.Contains(err.Error(), "UNIQUE constraint failed"):
		return fmt.Errorf("%s: retry: %w", d.name, err)
	}
	return nil
}

// The tables and columns the simulation writes: the first domain tables,
// with free-text and number columns that no domain rule constrains, so
// that every write is one the server must accept.
var simColumns = map[string][]string{
	"structure":    {"nom", "adresse", "commune", "latitude"},
	"beneficiaire": {"prenom", "nom", "notes", "annee_naissance"},
	"activite":     {"notes", "commune", "duree"},
}

var simTables = []string{"activite", "beneficiaire", "structure"}

func (w *World) pickTable() string { return simTables[w.rng.IntN(len(simTables))] }

// pickRow favours a few hot rows so that devices often write the same
// cells concurrently.
func (w *World) pickRow() rowRef {
	if w.rng.IntN(2) == 0 {
		return w.rows[w.rng.IntN(min(3, len(w.rows)))]
	}
	return w.rows[w.rng.IntN(len(w.rows))]
}

// required columns are always set on insert and never nulled: the domain
// rules want an identified beneficiary to keep a first and a last name.
var required = map[string]bool{"prenom": true, "nom": true}

func (w *World) rowValues(table string) ([]string, []any) {
	var cols []string
	var vals []any
	for _, c := range simColumns[table] {
		if required[c] || w.rng.IntN(3) > 0 {
			cols = append(cols, c)
			vals = append(vals, w.value(c))
		}
	}
	if len(cols) == 0 {
		c := simColumns[table][0]
		cols, vals = []string{c}, []any{w.value(c)}
	}
	return cols, vals
}

func (w *World) cellValue(table string) (string, any) {
	cs := simColumns[table]
	c := cs[w.rng.IntN(len(cs))]
	if w.rng.IntN(10) == 0 && !required[c] {
		return c, nil
	}
	return c, w.value(c)
}

var words = []string{"Laval", "Mayenne", "Château-Gontier", "Évron", "visite à domicile", "permanence", "PANDA", "", "l'atelier", "☕"}

func (w *World) value(col string) any {
	switch col {
	case "duree":
		return []int64{30, 45, 60, 90, 120}[w.rng.IntN(5)]
	case "annee_naissance":
		return int64(1930 + w.rng.IntN(80))
	case "latitude":
		return 47 + w.rng.Float64()
	}
	return fmt.Sprintf("%s %d", words[w.rng.IntN(len(words))], w.rng.IntN(1000))
}

// newID makes a UUIDv7-shaped id from the seed, so replays write the same
// rows.
func newID(rng *rand.Rand) string {
	a, b := rng.Uint64(), rng.Uint64()
	return fmt.Sprintf("%08x-%04x-7%03x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, 0x8000|(b>>48)&0x3fff, b&0xffffffffffff)
}

// db is the device's database, for the checks.
func (d *Device) db() *sql.DB { return d.r.DB() }
