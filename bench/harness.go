package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	return &http.Client{Timeout: 120 * time.Second, Transport: timing{tr, w}}
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
	cfg  Config
	dir  string
	srv  *serverProc
	wire *wire
	http *http.Client
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
	w := &wire{}
	return &rig{cfg: cfg, dir: dir, wire: w, http: w.client()}, nil
}

// prepare opens the server database (creating it) and runs fn on it before
// the server starts: seeding, accounts.
func (r *rig) prepare(ctx context.Context, fn func(db *store.DB) error) error {
	db, err := server.OpenDB(ctx, r.serverDir())
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
	srv, err := startServer(ctx, r.serverDir(), r.cfg.ProfileDir, name)
	if err != nil {
		return err
	}
	r.srv = srv
	if r.serverURL == "" {
		r.serverURL = srv.URL
	}
	return nil
}

func (r *rig) close() error {
	if r.srv == nil {
		return nil
	}
	err := r.srv.Stop()
	r.srv = nil
	return err
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
	up0, down0 int64
}

func (r *rig) begin() (*meter, error) {
	debug.FreeOSMemory()
	resetPeak(0)
	resetPeak(r.srv.pid())
	m := &meter{r: r, up0: r.wire.up.Load(), down0: r.wire.down.Load()}
	var err error
	if m.srv0, err = readUsage(r.srv.pid()); err != nil {
		return nil, err
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
	s, err := readUsage(m.r.srv.pid())
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
