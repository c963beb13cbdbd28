package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for freshDatabase

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// password is every benchmark account's password.
const password = "bench-mot-de-passe"

// wire counts the bytes that cross TCP between devices and the server,
// headers included, and times each exchange.
type wire struct {
	up, down atomic.Int64
	mu       sync.Mutex
	lat      []time.Duration
	front    roundRobin
}

type countingConn struct {
	net.Conn
	w *wire
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.w.down.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.up.Add(int64(n))
	return n, err
}

// client returns an HTTP client whose connections are counted and whose
// exchanges (POST /v1/sync, until the answer is read) are timed.
func (w *wire) client() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{c, w}, nil
		},
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     90 * time.Second,
		// Bodies are gzip already; the transport must not add its own.
		DisableCompression: true,
	}
	w.front.next = tr
	return &http.Client{Timeout: 120 * time.Second, Transport: timing{&w.front, w}}
}

// roundRobin is the load balancer in front of several servers: each
// request goes to the next server in turn (the first and only one when
// there is one). Devices log in to the first server's address; the
// balancer rewrites it.
type roundRobin struct {
	next   http.RoundTripper
	hosts  []string // host:port of each server, set once they listen
	n      atomic.Uint64
	served [8]atomic.Int64 // requests sent to each server
}

func (b *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	if len(b.hosts) < 2 {
		return b.next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	i := (b.n.Add(1) - 1) % uint64(len(b.hosts))
	b.served[i%uint64(len(b.served))].Add(1)
	h := b.hosts[i]
	out.URL.Host, out.Host = h, h
	return b.next.RoundTrip(out)
}

type timing struct {
	next http.RoundTripper
	w    *wire
}

func (t timing) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := t.next.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, syncproto.PathSync) {
		return res, err
	}
	res.Body = &timedBody{ReadCloser: res.Body, start: start, w: t.w}
	return res, nil
}

// timedBody records the exchange's latency when the device has read the
// whole answer and closes it.
type timedBody struct {
	io.ReadCloser
	start time.Time
	w     *wire
	once  sync.Once
}

func (b *timedBody) Close() error {
	b.once.Do(func() {
		d := time.Since(b.start)
		b.w.mu.Lock()
		b.w.lat = append(b.w.lat, d)
		b.w.mu.Unlock()
	})
	return b.ReadCloser.Close()
}

// latencies returns the exchange latencies recorded since the last call.
func (w *wire) latencies() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.lat
	w.lat = nil
	slices.Sort(l)
	return l
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// rig is what one scenario runs on: a work directory, a server child and
// the counted wire between it and the devices.
type rig struct {
	cfg Config
	dir string
	// srv is the first server; srvs all of them (several share a
	// PostgreSQL store).
	srv  *serverProc
	srvs []*serverProc
	// store is the scenario's PostgreSQL database, when Config.Store;
	// postmaster its cluster's process when it runs on this machine.
	store      string
	postmaster int
	wire       *wire
	http       *http.Client
	// serverURL is where devices connect: the server, or a proxy in front.
	serverURL string
}

func newRig(cfg Config, name string) (*rig, error) {
	dir := filepath.Join(cfg.Dir, name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	if cfg.Servers > 8 {
		return nil, errors.New("at most 8 servers")
	}
	if cfg.Servers > 1 && cfg.Store == "" {
		return nil, errors.New("several servers share a PostgreSQL database: give its address (--store)")
	}
	w := &wire{}
	r := &rig{cfg: cfg, dir: dir, wire: w, http: w.client()}
	if cfg.Store != "" {
		u, err := freshDatabase(context.Background(), cfg.Store, "relais_bench_"+name)
		if err != nil {
			return nil, err
		}
		r.store = u
	}
	return r, nil
}

// freshDatabase drops and creates the database name on the PostgreSQL
// server of addr, and returns its address.
func freshDatabase(ctx context.Context, addr, name string) (string, error) {
	db, err := sql.Open("pgx", addr)
	if err != nil {
		return "", fmt.Errorf("bench database: %w", err)
	}
	defer db.Close()
	for _, q := range []string{"DROP DATABASE IF EXISTS " + name + " WITH (FORCE)", "CREATE DATABASE " + name + " TEMPLATE template0 ENCODING 'UTF8'"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("bench database: %s: %w", q, err)
		}
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("bench database: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// analyze runs ANALYZE on the PostgreSQL database at addr, and returns
// the pid of its postmaster when it runs on this machine (0 otherwise):
// the parent of the backend that served the connection.
func analyze(ctx context.Context, addr string) (int, error) {
	db, err := sql.Open("pgx", addr)
	if err != nil {
		return 0, fmt.Errorf("bench database: %w", err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench database: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "ANALYZE"); err != nil {
		return 0, fmt.Errorf("bench database: ANALYZE: %w", err)
	}
	var backend int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0, fmt.Errorf("bench database: %w", err)
	}
	if f := procStat(backend); len(f) > 1 {
		if ppid, err := strconv.Atoi(f[1]); err == nil && len(procStat(ppid)) > 0 {
			return ppid, nil
		}
	}
	return 0, nil
}

// prepare opens the server database (creating it) and runs fn on it before
// the server starts: seeding, accounts.
func (r *rig) prepare(ctx context.Context, fn func(db *store.DB) error) error {
	var db *store.DB
	var err error
	if r.store != "" {
		db, err = server.OpenPostgres(ctx, r.store)
	} else {
		db, err = server.OpenDB(ctx, r.serverDir())
	}
	if err != nil {
		return err
	}
	if err := fn(db); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

func (r *rig) serverDir() string { return filepath.Join(r.dir, "server") }

// addUsers creates accounts, hashing passwords on every core: bcrypt is
// slow by design, and this is setup.
func addUsers(ctx context.Context, db *store.DB, role string, emails []string) error {
	a := &auth.Accounts{W: db.W, R: db.R}
	errs := make(chan error, len(emails))
	sem := make(chan struct{}, 4)
	for _, e := range emails {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := a.AddUser(ctx, e, role, password)
			errs <- err
		}()
	}
	for range emails {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

func (r *rig) start(ctx context.Context, name string) error {
	for i := range max(r.cfg.Servers, 1) {
		dir, phase := r.serverDir(), name
		if i > 0 {
			dir, phase = fmt.Sprintf("%s-%d", dir, i+1), fmt.Sprintf("%s-%d", name, i+1)
		}
		srv, err := startServer(ctx, dir, r.store, r.cfg.ProfileDir, phase)
		if err != nil {
			_ = r.close()
			return err
		}
		r.srvs = append(r.srvs, srv)
		r.wire.front.hosts = append(r.wire.front.hosts, strings.TrimPrefix(srv.URL, "http://"))
	}
	r.srv = r.srvs[0]
	if r.serverURL == "" {
		r.serverURL = r.srv.URL
	}
	return nil
}

func (r *rig) close() error {
	var first error
	for _, s := range r.srvs {
		if err := s.Stop(); err != nil && first == nil {
			first = err
		}
	}
	r.srv, r.srvs, r.wire.front.hosts = nil, nil, nil
	return first
}

// serverUsage sums the servers' CPU time and takes the largest peak
// memory of one of them.
func (r *rig) serverUsage() (usage, error) {
	var sum usage
	for _, s := range r.srvs {
		u, err := readUsage(s.pid())
		if err != nil {
			return sum, err
		}
		sum.CPU += u.CPU
		sum.PeakRSS = max(sum.PeakRSS, u.PeakRSS)
	}
	return sum, nil
}

// openDevice opens a fresh replica and logs it in as email.
func (r *rig) openDevice(ctx context.Context, name, email string) (*device.Replica, error) {
	return r.openDeviceAs(ctx, name, email, password)
}

func (r *rig) openDeviceAs(ctx context.Context, name, email, pw string) (*device.Replica, error) {
	d, err := device.Open(ctx, filepath.Join(r.dir, name+".db"), device.Options{HTTPClient: r.http, RetryFor: 20 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := d.Login(ctx, r.serverURL, email, pw); err != nil {
		d.Close()
		return nil, fmt.Errorf("device %s: %w", name, err)
	}
	return d, nil
}

// meter measures one phase.
type meter struct {
	r          *rig
	t0         time.Time
	srv0, dev0 usage
	db0        time.Duration
	up0, down0 int64
}

func (r *rig) begin() (*meter, error) {
	if r.store != "" {
		// Statistics for the planner, as autovacuum would gather them on
		// a server that has been running: on tables it has never
		// analysed, PostgreSQL reads a batch's version records by
		// scanning (docs/DESIGN.md, "Hazards").
		var err error
		if r.postmaster, err = analyze(context.Background(), r.store); err != nil {
			return nil, err
		}
	}
	debug.FreeOSMemory()
	resetPeak(0)
	for _, s := range r.srvs {
		resetPeak(s.pid())
	}
	m := &meter{r: r, up0: r.wire.up.Load(), down0: r.wire.down.Load()}
	var err error
	if m.srv0, err = r.serverUsage(); err != nil {
		return nil, err
	}
	if r.postmaster != 0 {
		m.db0 = postgresUsage(r.postmaster)
	}
	for i := range r.wire.front.served {
		r.wire.front.served[i].Store(0)
	}
	if m.dev0, err = readUsage(0); err != nil {
		return nil, err
	}
	r.wire.latencies()
	m.t0 = time.Now()
	return m, nil
}

// end fills a row with what the phase cost.
func (m *meter) end(name string, activities int) (Row, error) {
	wall := time.Since(m.t0)
	s, err := m.r.serverUsage()
	if err != nil {
		return Row{}, err
	}
	d, err := readUsage(0)
	if err != nil {
		return Row{}, err
	}
	row := Row{
		Name: name, Activities: activities, Wall: wall,
		BytesUp: m.r.wire.up.Load() - m.up0, BytesDown: m.r.wire.down.Load() - m.down0,
		ServerCPU: s.CPU - m.srv0.CPU, DeviceCPU: d.CPU - m.dev0.CPU,
		ServerPeakRSS: s.PeakRSS, DevicePeakRSS: d.PeakRSS,
		Servers: len(m.r.srvs),
	}
	if m.r.store != "" {
		row.Store = "postgres"
		if m.r.postmaster != 0 {
			row.DatabaseCPU = postgresUsage(m.r.postmaster) - m.db0
		}
	}
	if len(m.r.srvs) > 1 {
		row.Extra = map[string]float64{}
		for i := range min(len(m.r.srvs), len(m.r.wire.front.served)) {
			row.Extra[fmt.Sprintf("requests_server_%d", i+1)] = float64(m.r.wire.front.served[i].Swap(0))
		}
	}
	if lat := m.r.wire.latencies(); len(lat) > 0 {
		row.Exchanges = len(lat)
		row.P50, row.P99, row.Max = percentile(lat, 0.50), percentile(lat, 0.99), lat[len(lat)-1]
	}
	if activities > 0 && wall > 0 {
		row.PerSecond = float64(activities) / wall.Seconds()
		row.BytesPerActivity = float64(row.BytesUp+row.BytesDown) / float64(activities)
	}
	return row, nil
}

// insertRows writes rows into db's domain tables in one transaction with
// one prepared statement per table, filling columns the row lacks with
// NULL. On a device replica the capture triggers record every cell.
func insertRows(ctx context.Context, db *sql.DB, schema *syncproto.Schema, rows []row) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert rows: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	stmts := map[string]*sql.Stmt{}
	cols := map[string][]string{}
	for _, rw := range rows {
		t := schema.Tables[rw.Table]
		if t == nil {
			continue
		}
		st, ok := stmts[rw.Table]
		if !ok {
			cols[rw.Table] = t.ColumnNames()
			q := fmt.Sprintf(`INSERT INTO %q (id, "%s") VALUES (?%s)`, rw.Table,
				strings.Join(cols[rw.Table], `", "`), strings.Repeat(", ?", len(cols[rw.Table])))
			if st, err = tx.PrepareContext(ctx, q); err != nil {
				return fmt.Errorf("insert rows into %s: %w", rw.Table, err)
			}
			defer st.Close()
			stmts[rw.Table] = st
		}
		args := make([]any, 0, 1+len(cols[rw.Table]))
		args = append(args, rw.ID)
		for _, c := range cols[rw.Table] {
			args = append(args, rw.Values[c])
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert %s %s: %w", rw.Table, rw.ID, err)
		}
	}
	return tx.Commit()
}

// loadSchema reads a database's synced tables.
func loadSchema(ctx context.Context, db *sql.DB) (*syncproto.Schema, error) {
	return replica.LoadSchema(ctx, db)
}

// syncAll runs Sync until the device has nothing to push or pull, and
// sums the reports.
func syncAll(ctx context.Context, d *device.Replica) (device.Report, error) {
	rep, err := d.Sync(ctx)
	if err != nil {
		return rep, fmt.Errorf("sync %s: %w", d.Node(), err)
	}
	return rep, nil
}
