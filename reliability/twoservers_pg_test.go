package reliability

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/pgtest"
)

// balancer is the devices' load balancer in front of several `relais
// serve` processes: each request goes to one of them at random (a device
// has no affinity to a server), and, while faults are on, some answers
// are lost after the server has acted on the request. A server that is
// down refuses the connection; the device retries, maybe on the other.
type balancer struct {
	servers  []*serverProc
	base     http.RoundTripper
	mu       sync.Mutex
	rng      *rand.Rand
	faulty   atomic.Bool
	inflight []atomic.Int64 // requests under way, per server
	lost     atomic.Int64
	served   []atomic.Int64
}

// errAnswerLost is what a device sees when the network lost an answer.
var errAnswerLost = errors.New("balancer: the answer was lost on the way back")

func newBalancer(seed uint64, servers ...*serverProc) *balancer {
	return &balancer{servers: servers, base: &http.Transport{}, rng: rand.New(rand.NewPCG(seed, 3)),
		inflight: make([]atomic.Int64, len(servers)), served: make([]atomic.Int64, len(servers))}
}

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	b.mu.Lock()
	i := b.rng.IntN(len(b.servers))
	lose := b.faulty.Load() && b.rng.IntN(100) < 8
	b.mu.Unlock()
	out := req.Clone(req.Context())
	out.URL.Host = b.servers[i].addr
	out.Host = b.servers[i].addr
	b.inflight[i].Add(1)
	defer b.inflight[i].Add(-1)
	resp, err := b.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	b.served[i].Add(1)
	if lose {
		// The server did the work; the device never hears of it.
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		b.lost.Add(1)
		return nil, errAnswerLost
	}
	return resp, nil
}

// TestTwoServersOnPostgres runs two real `relais serve` processes on one
// PostgreSQL database behind a load balancer that sends each request to
// either at random and loses some answers. Four devices write and sync
// at once (each its own rows, and all of them a few shared rows, which
// makes conflicts), while one server or the other is killed with SIGKILL
// in the middle of an exchange and restarted. In the end every device
// holds the same replica, every write a device made is on every device
// and on the server, no outbox holds anything, and a device that joins
// last pulls, through either server, exactly the same replica.
func TestTwoServersOnPostgres(t *testing.T) {
	ctx := context.Background()
	kills := envCount("RELAIS_PG_KILLS", 4)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 1))

	url := pgtest.DB(t)
	relaisCmd(t, crashPassword+"\n", "admin", "user", "add", "--store", url, "--email", crashEmail, "--role", "admin", "--password-stdin")
	one := startServerOn(t, url, freeAddr(t))
	two := startServerOn(t, url, freeAddr(t))
	// What a balancer's health check asks: both ready on the shared
	// database.
	for _, p := range []*serverProc{one, two} {
		res, err := http.Get(p.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s/readyz: %d", p.URL(), res.StatusCode)
		}
	}
	lb := newBalancer(seed, one, two)
	const front = "http://relais.lb.test"

	open := func(name string) *device.Replica {
		r, err := device.Open(ctx, filepath.Join(t.TempDir(), name+".db"), device.Options{
			HTTPClient: &http.Client{Transport: lb, Timeout: 5 * time.Second},
			RetryFor:   2 * time.Second,
			BatchSize:  1 + rng.IntN(8), PageLimit: 1 + rng.IntN(40),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if err := r.Login(ctx, front, crashEmail, crashPassword); err != nil {
			t.Fatal(err)
		}
		return r
	}
	const nDev = 4
	devs := make([]*device.Replica, nDev)
	wrote := make([]*written, nDev)
	for i := range devs {
		devs[i], wrote[i] = open(fmt.Sprintf("d%d", i)), &written{cells: map[string]map[string]any{}}
	}
	// Shared rows every device writes to, concurrently.
	var shared []string
	for range 3 {
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := devs[0].DB().ExecContext(ctx, "INSERT INTO activite (id, duree, commune) VALUES (?, 30, 'Laval')", id); err != nil {
			t.Fatal(err)
		}
		shared = append(shared, id)
	}
	settle(t, devs)

	lb.faulty.Store(true)
	var syncErrors atomic.Int64
	for k := 0; k < kills; k++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i, r := range devs {
			wg.Add(1)
			go func(i int, r *device.Replica, seed uint64) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(i)))
				var mine []string
				for it := 0; it < 100; it++ { // bounded; the kill usually stops it first
					select {
					case <-stop:
						return
					default:
					}
					for n := 0; n < 1+rng.IntN(4); n++ {
						switch {
						case rng.IntN(4) == 0:
							v := fmt.Sprintf("d%d %d-%d", i, k, it)
							if _, err := r.DB().ExecContext(ctx, "UPDATE activite SET commune = ? WHERE id = ?", v, shared[rng.IntN(len(shared))]); err != nil {
								t.Errorf("update a shared row: %v", err)
								return
							}
						case len(mine) > 0 && rng.IntN(3) == 0:
							id := mine[rng.IntN(len(mine))]
							v := fmt.Sprintf("note %d-%d", k, it)
							if _, err := r.DB().ExecContext(ctx, "UPDATE activite SET notes = ? WHERE id = ?", v, id); err != nil {
								t.Errorf("update: %v", err)
								return
							}
							wrote[i].set(id, "notes", v)
						default:
							id := uuid.Must(uuid.NewV7()).String()
							d := int64(15 * (1 + rng.IntN(8)))
							c := fmt.Sprintf("Commune %d", rng.IntN(100))
							if _, err := r.DB().ExecContext(ctx, "INSERT INTO activite (id, duree, commune) VALUES (?, ?, ?)", id, d, c); err != nil {
								t.Errorf("insert: %v", err)
								return
							}
							wrote[i].set(id, "duree", d)
							wrote[i].set(id, "commune", c)
							mine = append(mine, id)
						}
					}
					if _, err := r.Sync(ctx); err != nil {
						syncErrors.Add(1)
						time.Sleep(10 * time.Millisecond)
					}
				}
			}(i, r, seed+uint64(k))
		}
		// Kill one server while it is answering a request: wait for one
		// under way (bounded), after a random moment.
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		victim := rng.IntN(2)
		for wait := 0; wait < 2000 && lb.inflight[victim].Load() == 0; wait++ {
			time.Sleep(time.Millisecond)
		}
		midExchange := lb.inflight[victim].Load() > 0
		lb.servers[victim].kill()
		t.Logf("kill %d: server %d killed (a request under way: %v)", k+1, victim+1, midExchange)
		// The other serves alone for a while, then the killed one comes
		// back on the same database.
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		lb.servers[victim].start()
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond)
		close(stop)
		wg.Wait()
	}
	lb.faulty.Store(false)

	// Quiescence: every device syncs until a full round moves nothing.
	settle(t, devs)
	_, want := dumpDB(t, devs[0].DB())
	for i, r := range devs[1:] {
		if _, got := dumpDB(t, r.DB()); got != want {
			t.Errorf("device %d differs from device 0 after the kills", i+1)
		}
	}
	pg, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	total := 0
	for i := range devs {
		for id, cols := range wrote[i].cells {
			total += len(cols)
			for col, v := range cols {
				for j, other := range devs {
					var have any
					err := other.DB().QueryRowContext(ctx, "SELECT "+col+" FROM activite WHERE id = ?", id).Scan(&have)
					if err != nil || fmt.Sprint(have) != fmt.Sprint(v) {
						t.Errorf("device %d's write %s.%s = %v: device %d has %v (%v)", i, id, col, v, j, have, err)
					}
				}
				var have any
				err := pg.QueryRowContext(ctx, "SELECT "+col+" FROM activite WHERE id = $1", id).Scan(&have)
				if err != nil || fmt.Sprint(have) != fmt.Sprint(v) {
					t.Errorf("device %d's write %s.%s = %v: the server has %v (%v)", i, id, col, v, have, err)
				}
			}
		}
	}
	// The shared rows: the same winner on the server as on the devices.
	for _, id := range shared {
		var dev, srv sql.NullString
		if err := devs[0].DB().QueryRowContext(ctx, "SELECT commune FROM activite WHERE id = ?", id).Scan(&dev); err != nil {
			t.Fatal(err)
		}
		if err := pg.QueryRowContext(ctx, "SELECT commune FROM activite WHERE id = $1", id).Scan(&srv); err != nil {
			t.Fatal(err)
		}
		if dev != srv {
			t.Errorf("shared row %s: the devices hold %v, the server %v", id, dev, srv)
		}
	}
	// A device that joins last pulls everything, page by page from
	// either server: a hole in the sequence would leave it short.
	late := open("late")
	settle(t, append(devs, late))
	if _, got := dumpDB(t, late.DB()); got != want {
		t.Errorf("a device that joined last, pulling through both servers, differs from the others")
	}
	var conflicts int
	if err := pg.QueryRowContext(ctx, "SELECT COUNT(*) FROM _conflicts").Scan(&conflicts); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kills survived; %d cells written by %d devices all present everywhere; %d answers lost; %d syncs failed; "+
		"requests served %d and %d; %d conflicts logged", kills, total, nDev, lb.lost.Load(), syncErrors.Load(),
		lb.served[0].Load(), lb.served[1].Load(), conflicts)
	if lb.served[0].Load() == 0 || lb.served[1].Load() == 0 {
		t.Errorf("a server answered nothing: the run did not use both")
	}
}
