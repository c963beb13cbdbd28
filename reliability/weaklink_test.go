package reliability

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// Two toxics of our own, registered with toxiproxy: a byte counter (what
// crossed the link, headers and re-sent bytes included: what a device
// pays for) and a cut that closes a connection after a random number of
// bytes, exponentially distributed, which is how a weak cellular link
// drops: at any moment, not at a fixed offset.

var linkCounters sync.Map // counter name -> *atomic.Int64

func linkCounter(name string) *atomic.Int64 {
	c, _ := linkCounters.LoadOrStore(name, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// countToxic adds the bytes that pass to the counter named Counter.
type countToxic struct {
	Counter string `json:"counter"`
}

func (t *countToxic) Pipe(stub *toxics.ToxicStub) {
	c := linkCounter(t.Counter)
	for {
		select {
		case <-stub.Interrupt:
			return
		case chunk := <-stub.Input:
			if chunk == nil {
				stub.Close()
				return
			}
			c.Add(int64(len(chunk.Data)))
			stub.Output <- chunk
		}
	}
}

var cutRNG = struct {
	sync.Mutex
	*rand.Rand
}{Rand: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))}

// cutToxic closes the connection after a random number of bytes with mean
// MeanBytes, drawn afresh for every connection.
type cutToxic struct {
	MeanBytes int64 `json:"mean_bytes"`
}

type cutState struct{ left int64 }

func (t *cutToxic) NewState() any {
	cutRNG.Lock()
	defer cutRNG.Unlock()
	return &cutState{left: int64(math.Ceil(cutRNG.ExpFloat64() * float64(t.MeanBytes)))}
}

func (t *cutToxic) Pipe(stub *toxics.ToxicStub) {
	st := stub.State.(*cutState)
	for {
		select {
		case <-stub.Interrupt:
			return
		case chunk := <-stub.Input:
			if chunk == nil {
				stub.Close()
				return
			}
			if int64(len(chunk.Data)) >= st.left {
				chunk = &stream.StreamChunk{Timestamp: chunk.Timestamp, Data: chunk.Data[:st.left]}
				if len(chunk.Data) > 0 {
					stub.Output <- chunk
				}
				linkCounter("cuts").Add(1)
				stub.Close()
				return
			}
			st.left -= int64(len(chunk.Data))
			stub.Output <- chunk
		}
	}
}

// stallToxic stalls every Every-th answer: its bytes stop flowing and the
// connection stays open, so only the client's timeout ends the exchange.
// Answers are counted as they start, so stalls happen whatever the cuts
// do, and the test can say how many there were.
type stallToxic struct {
	Every int64 `json:"every"`
}

type stallState struct{ stalled bool }

func (t *stallToxic) NewState() any { return &stallState{} }

func (t *stallToxic) Pipe(stub *toxics.ToxicStub) {
	st := stub.State.(*stallState)
	for {
		select {
		case <-stub.Interrupt:
			return
		case chunk := <-stub.Input:
			if chunk == nil {
				stub.Close()
				return
			}
			// A connection carries several answers (keep-alive); each
			// starts a write of its own with the status line.
			if !st.stalled && bytes.HasPrefix(chunk.Data, []byte("HTTP/1.")) {
				if t.Every > 0 && linkCounter("answers").Add(1)%t.Every == 0 {
					st.stalled = true
					linkCounter("stalls").Add(1)
				}
			}
			if !st.stalled {
				stub.Output <- chunk
			}
		}
	}
}

func init() {
	toxics.Register("relais_count", new(countToxic))
	toxics.Register("relais_cut", new(cutToxic))
	toxics.Register("relais_stall", new(stallToxic))
}

// weakLink is a toxiproxy proxy in front of a server, in this process.
type weakLink struct {
	proxy *toxiproxy.Proxy
}

func newWeakLink(t *testing.T, upstream string) *weakLink {
	t.Helper()
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	api.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	p := toxiproxy.NewProxy(api, "relais", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &weakLink{proxy: p}
}

func (l *weakLink) URL() string { return "http://" + l.proxy.Listen }

func (l *weakLink) add(t *testing.T, spec string) {
	t.Helper()
	if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		t.Fatalf("add toxic %s: %v", spec, err)
	}
}

// profile2G is a rural 2G (EDGE) link: about 250 kbit/s each way and
// 400 ms of round-trip latency with jitter. Counters see the bytes as
// they enter the link.
func (l *weakLink) profile2G(t *testing.T, prefix string) {
	for _, dir := range []string{"upstream", "downstream"} {
		l.add(t, fmt.Sprintf(`{"name":"count_%s","type":"relais_count","stream":"%s","attributes":{"counter":"%s_%s"}}`, dir, dir, prefix, dir))
		l.add(t, fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":"%s","attributes":{"latency":200,"jitter":60}}`, dir, dir))
		l.add(t, fmt.Sprintf(`{"name":"bandwidth_%s","type":"bandwidth","stream":"%s","attributes":{"rate":31}}`, dir, dir))
	}
}

// TestWeakLinkBacklog pushes a 10,000-change backlog through the 2G
// profile with connections cut every few kilobytes (exponentially, mean 8
// KB each way) and one answer in six stalled until the client's timeout. The backlog completes, the server holds each change once, and
// the test reports the bytes that crossed the link per change.
func TestWeakLinkBacklog(t *testing.T) {
	ctx := context.Background()
	changes := envCount("RELAIS_WEAK_CHANGES", 10000)
	srv := relaistest.StartServer(t, server.Config{})
	srv.AddUser(t, "faible@relais.test", "admin", "mot-de-passe-2g")
	link := newWeakLink(t, strings.TrimPrefix(srv.URL, "http://"))
	link.profile2G(t, "backlog")
	for _, dir := range []string{"upstream", "downstream"} {
		link.add(t, fmt.Sprintf(`{"name":"cut_%s","type":"relais_cut","stream":"%s","attributes":{"mean_bytes":8192}}`, dir, dir))
	}
	link.add(t, `{"name":"stall","type":"relais_stall","stream":"downstream","attributes":{"every":6}}`)

	r := relaistest.OpenDevice(t, "faible", device.Options{
		HTTPClient: &http.Client{Timeout: 8 * time.Second},
		RetryFor:   20 * time.Second,
	})
	// Log in on a clean link: logins are not retried blindly.
	if err := r.Login(ctx, srv.URL, "faible@relais.test", "mot-de-passe-2g"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DB().ExecContext(ctx, "UPDATE _device SET server = ?", link.URL()); err != nil {
		t.Fatal(err)
	}
	// The backlog: activities of 4 cells each, written offline.
	rows := changes / 4
	tx, err := r.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < rows; i++ {
		if _, err := tx.ExecContext(ctx, "INSERT INTO activite (id, duree, commune, notes, date) VALUES (?, ?, ?, ?, ?)",
			uuid.Must(uuid.NewV7()).String(), 30+i%90, fmt.Sprintf("Commune %d", i%50), fmt.Sprintf("visite %d, démarche CAF", i),
			fmt.Sprintf("2026-%02d-%02d", 1+i%12, 1+i%28)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backlog: %d changes in the outbox", st.Pending)

	start := time.Now()
	var total device.Report
	syncs, failures := 0, 0
	for ; ; syncs++ {
		if syncs == 200 {
			t.Fatalf("backlog not through after 200 syncs (%d pending)", pending(t, r))
		}
		rep, err := r.Sync(ctx)
		total.Exchanges += rep.Exchanges
		total.Pushed += rep.Pushed
		if err == nil {
			break
		}
		failures++
	}
	elapsed := time.Since(start)
	if n := pending(t, r); n != 0 {
		t.Fatalf("%d changes still pending", n)
	}
	var activities, conflicts int
	if err := srv.DB().R.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM activite), (SELECT COUNT(*) FROM _conflicts)`).
		Scan(&activities, &conflicts); err != nil {
		t.Fatal(err)
	}
	cells := relaistest.CountCells(t, srv.DB().R, nil)
	if cells != st.Pending || activities != rows || conflicts != 0 {
		t.Errorf("server holds %d cells (want %d), %d activities (want %d), %d conflicts (want 0)", cells, st.Pending, activities, rows, conflicts)
	}
	if linkCounter("stalls").Load() == 0 && changes >= 6000 {
		t.Errorf("no answer was stalled: the test did not exercise the client's timeout")
	}
	up, down := linkCounter("backlog_upstream").Load(), linkCounter("backlog_downstream").Load()
	t.Logf("%d changes through 2G with cuts (mean 8 KB) and stalls in %s: %d syncs (%d failed), %d exchanges, %d cuts, %d stalls ended by the client's timeout; %d bytes up, %d down: %.1f bytes per change on the link",
		st.Pending, elapsed.Round(time.Second), syncs+1, failures, total.Exchanges, linkCounter("cuts").Load(), linkCounter("stalls").Load(), up, down,
		float64(up+down)/float64(st.Pending))
}

func pending(t *testing.T, r *device.Replica) int {
	t.Helper()
	st, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Pending
}

// TestWeakLinkDayOfWork: a conseiller's day (20 activities, each with its
// beneficiary) on the 2G profile goes in one exchange.
func TestWeakLinkDayOfWork(t *testing.T) {
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{})
	srv.AddUser(t, "journee@relais.test", "admin", "mot-de-passe-2g")
	link := newWeakLink(t, strings.TrimPrefix(srv.URL, "http://"))
	link.profile2G(t, "day")
	r := relaistest.OpenDevice(t, "journee", device.Options{HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err := r.Login(ctx, link.URL(), "journee@relais.test", "mot-de-passe-2g"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		b := uuid.Must(uuid.NewV7()).String()
		if _, err := r.DB().ExecContext(ctx, `INSERT INTO beneficiaire (id, prenom, nom, commune, annee_naissance) VALUES (?, ?, ?, 'Laval', ?)`,
			b, fmt.Sprintf("Prénom%d", i), fmt.Sprintf("Nom%d", i), 1940+i); err != nil {
			t.Fatal(err)
		}
		if _, err := r.DB().ExecContext(ctx, `INSERT INTO activite (id, type, date, duree, type_lieu, commune, notes) VALUES (?, 'individuel', '2026-11-25', ?, 'domicile', 'Laval', ?)`,
			uuid.Must(uuid.NewV7()).String(), 30+i, fmt.Sprintf("Visite à domicile n°%d : aide à la déclaration en ligne", i)); err != nil {
			t.Fatal(err)
		}
	}
	n := pending(t, r)
	start := time.Now()
	rep, err := r.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Exchanges != 1 || rep.Pushed != n {
		t.Errorf("a day's work took %d exchanges and pushed %d of %d changes; want one exchange", rep.Exchanges, rep.Pushed, n)
	}
	up, down := linkCounter("day_upstream").Load(), linkCounter("day_downstream").Load()
	t.Logf("a day's work (20 activities, 20 beneficiaries, %d changes) over 2G: %d exchange, %s, %d bytes up, %d down (%.1f bytes per change)",
		n, rep.Exchanges, time.Since(start).Round(time.Millisecond), up, down, float64(up+down)/float64(n))
}
