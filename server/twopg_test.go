package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// TestConcurrentExchangesOnTwoServers: two servers on one PostgreSQL
// behind a load balancer that sends each request to either at random,
// each write transaction delayed a little between its draw of sequence
// numbers and its commit. Six tablets of one account work at once: each
// creates structures and renames the same three shared ones, and syncs
// after each write; two more only pull, again and again, meanwhile. Then
// every tablet syncs until it has nothing more to receive: all hold the
// same replica, with every structure created and, for each shared one,
// the same name. Two servers merging into the same rows at the same time
// keep every write, no pull moves a cursor past a change still to
// commit, and no exchange fails for good.
func TestConcurrentExchangesOnTwoServers(t *testing.T) {
	ctx := context.Background()
	store := pgtest.DB(t)
	delay := func() { time.Sleep(time.Duration(rand.IntN(4)) * time.Millisecond) }
	one := relaistest.StartServer(t, server.Config{Store: store, AfterDraw: delay})
	two := relaistest.StartServer(t, server.Config{Store: store, AfterDraw: delay})
	one.AddUser(t, "camille@exemple.fr", "admin", relaistest.TabletsPassword)
	lb := balancer(t, one.URL, two.URL)

	shared := make([]string, 3)
	for i := range shared {
		shared[i] = uuid.Must(uuid.NewV7()).String()
	}
	const tablets, rounds, pullers = 6, 8, 2
	devs := make([]*device.Replica, tablets+pullers)
	for i := range devs {
		devs[i] = relaistest.OpenDevice(t, fmt.Sprintf("t%d", i), device.Options{RetryFor: 30 * time.Second})
		if err := devs[i].Login(ctx, lb, "camille@exemple.fr", relaistest.TabletsPassword); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, tablets+pullers)
	stop := make(chan struct{})
	var pulling sync.WaitGroup
	for _, d := range devs[tablets:] {
		pulling.Add(1)
		go func() {
			defer pulling.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := d.Sync(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i, d := range devs[:tablets] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 15))
			for r := range rounds {
				id := uuid.Must(uuid.NewV7()).String()
				if _, err := d.DB().ExecContext(ctx, "INSERT INTO structure (id, nom) VALUES (?, ?)", id, fmt.Sprintf("t%d-%d", i, r)); err != nil {
					errs <- err
					return
				}
				s := shared[rng.IntN(len(shared))]
				if _, err := d.DB().ExecContext(ctx, "INSERT INTO structure (id, nom) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET nom = excluded.nom",
					s, fmt.Sprintf("t%d-%d", i, r)); err != nil {
					errs <- err
					return
				}
				if _, err := d.Sync(ctx); err != nil {
					errs <- fmt.Errorf("tablet %d, round %d: %w", i, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	pulling.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Everyone catches up: two passes, the second receiving what the
	// first pushes of the others.
	for range 2 {
		for _, d := range devs {
			if _, err := d.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	schema := one.Schema()
	var want string
	for i, d := range devs {
		sum, text, err := relaistest.DumpReplica(ctx, d.DB(), schema)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := d.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM structure").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != tablets*rounds+len(shared) {
			t.Fatalf("tablet %d holds %d structures, want %d", i, n, tablets*rounds+len(shared))
		}
		if i > 0 && sum != want {
			t.Fatalf("tablet %d differs from tablet 0:\n%s", i, text)
		}
		want = sum
	}
}

// balancer is a load balancer on loopback that sends each request to one
// of the backends at random.
func balancer(t *testing.T, backends ...string) string {
	t.Helper()
	proxies := make([]*httputil.ReverseProxy, len(backends))
	for i, b := range backends {
		u, err := url.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		proxies[i] = httputil.NewSingleHostReverseProxy(u)
	}
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxies[rand.IntN(len(proxies))].ServeHTTP(w, r)
	}))
	t.Cleanup(lb.Close)
	return lb.URL
}
