package device_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server"
)

// faultyLink is the puller's HTTP transport: it counts the sync requests
// and, while armed, calls fault on each one from the n-th on.
type faultyLink struct {
	mu    sync.Mutex
	n     int
	armed bool
	sent  int
	fault func(req *http.Request) (*http.Response, error)
}

func (l *faultyLink) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/v1/sync") {
		return http.DefaultTransport.RoundTrip(req)
	}
	l.mu.Lock()
	l.sent++
	hit := l.armed && l.sent >= l.n
	l.mu.Unlock()
	if hit {
		return l.fault(req)
	}
	return http.DefaultTransport.RoundTrip(req)
}

func (l *faultyLink) disarm() {
	l.mu.Lock()
	l.armed = false
	l.mu.Unlock()
}

// TestPipelinedPullInterrupted interrupts a many-page pull (where each
// next page is requested while the previous one is applied) in the
// ways a tablet meets: the application gives up, the server goes away,
// answers are lost on the way back, a page fails to apply. The next Sync
// must resume from what was committed and end with exactly the server's
// data.
func TestPipelinedPullInterrupted(t *testing.T) {
	const rows, pageLimit, failAt = 120, 40, 6
	errCut := errors.New("link cut by the test")
	cases := []struct {
		name string
		// fault is what the puller's link does to sync requests from the
		// failAt-th on during the first Sync; cancel cancels that Sync.
		fault func(req *http.Request, cancel context.CancelFunc) (*http.Response, error)
		// failApply, when set, makes applying the page holding this
		// cell's row fail, through a trigger on the puller's _rows.
		failApply bool
	}{
		{
			name: "context cancelled",
			fault: func(req *http.Request, cancel context.CancelFunc) (*http.Response, error) {
				cancel()
				return nil, context.Canceled
			},
		},
		{
			name: "server unreachable",
			fault: func(req *http.Request, cancel context.CancelFunc) (*http.Response, error) {
				return nil, errCut
			},
		},
		{
			name: "answers lost",
			fault: func(req *http.Request, cancel context.CancelFunc) (*http.Response, error) {
				res, err := http.DefaultTransport.RoundTrip(req)
				if err == nil {
					res.Body.Close() // the server did the work; the device never hears of it
				}
				return nil, errCut
			},
		},
		{name: "page fails to apply", failApply: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv := relaistest.StartServer(t, server.Config{})
			srv.AddUser(t, "a@example.fr", "admin", "motdepasse1")
			writer := srv.LoggedInDevice(t, "writer", "a@example.fr", "motdepasse1")
			var ids []string
			for i := range rows {
				id := uuid.Must(uuid.NewV7()).String()
				ids = append(ids, id)
				if _, err := writer.DB().ExecContext(ctx, "INSERT INTO activite (id, type, duree, commune, notes) VALUES (?, 'individuel', ?, ?, ?)",
					id, 30+i%60, fmt.Sprintf("Commune %d", i%7), fmt.Sprintf("visite %d", i)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := writer.Sync(ctx); err != nil {
				t.Fatal(err)
			}

			syncCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			link := &faultyLink{n: failAt, armed: tc.fault != nil}
			if tc.fault != nil {
				link.fault = func(req *http.Request) (*http.Response, error) { return tc.fault(req, cancel) }
			}
			puller := relaistest.OpenDevice(t, "puller", device.Options{
				HTTPClient: &http.Client{Transport: link, Timeout: 30 * time.Second},
				PageLimit:  pageLimit,
				RetryFor:   200 * time.Millisecond,
			})
			if err := puller.Login(ctx, srv.URL, "a@example.fr", "motdepasse1"); err != nil {
				t.Fatal(err)
			}
			if tc.failApply {
				// A row written in the middle of the pull.
				if _, err := puller.DB().ExecContext(ctx, fmt.Sprintf(`CREATE TRIGGER test_fail_apply BEFORE INSERT ON _rows
					WHEN NEW.pk = unhex(replace('%s', '-', '')) BEGIN SELECT RAISE(ABORT, 'injected failure'); END`, ids[rows/2])); err != nil {
					t.Fatal(err)
				}
			}

			rep, err := puller.Sync(syncCtx)
			if err == nil {
				t.Fatalf("the first sync was not interrupted: %+v", rep)
			}
			st, serr := puller.Status(ctx)
			if serr != nil {
				t.Fatal(serr)
			}
			if st.Cursor == 0 {
				t.Fatalf("no page was committed before the interruption (%v, %+v)", err, rep)
			}
			held := countCells(t, puller)
			if rep.Pulled != held {
				t.Errorf("report says %d cells pulled, the replica holds %d", rep.Pulled, held)
			}

			link.disarm()
			if tc.failApply {
				if _, err := puller.DB().ExecContext(ctx, "DROP TRIGGER test_fail_apply"); err != nil {
					t.Fatal(err)
				}
			}
			rep2, err := puller.Sync(ctx)
			if err != nil {
				t.Fatalf("resumed sync: %v", err)
			}
			if got := countCells(t, puller); rep.Pulled+rep2.Pulled < got {
				t.Errorf("the two syncs report %d+%d cells pulled, the replica holds %d", rep.Pulled, rep2.Pulled, got)
			}
			sameData(t, srv, puller)
		})
	}
}

// TestPipelinedPullReport checks that an uninterrupted pull of many pages
// reports one exchange per page and every cell once, and ends with the
// server's data.
func TestPipelinedPullReport(t *testing.T) {
	ctx := context.Background()
	srv := serverWithActivities(t, 50)
	link := &faultyLink{}
	const pageLimit = 13
	puller := relaistest.OpenDevice(t, "puller", device.Options{HTTPClient: &http.Client{Transport: link}, PageLimit: pageLimit})
	if err := puller.Login(ctx, srv.URL, "a@example.fr", "motdepasse1"); err != nil {
		t.Fatal(err)
	}
	rep, err := puller.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := countCells(t, puller)
	if rep.Pulled != held {
		t.Errorf("report says %d cells pulled, the replica holds %d", rep.Pulled, held)
	}
	if pages := (held + pageLimit - 1) / pageLimit; rep.Exchanges < pages || rep.Exchanges > pages+1 {
		t.Errorf("%d exchanges for %d cells in pages of %d", rep.Exchanges, held, pageLimit)
	}
	if rep.Exchanges != link.sent {
		t.Errorf("report says %d exchanges, the link carried %d sync requests", rep.Exchanges, link.sent)
	}
	if rep.BytesUp == 0 || rep.BytesDown == 0 {
		t.Errorf("bytes not counted: %+v", rep)
	}
	sameData(t, srv, puller)
}

// serverWithActivities starts a server holding n activities, written and
// pushed by another device of the administrator a@example.fr.
func serverWithActivities(t *testing.T, n int) *relaistest.Server {
	t.Helper()
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{})
	srv.AddUser(t, "a@example.fr", "admin", "motdepasse1")
	writer := srv.LoggedInDevice(t, "writer", "a@example.fr", "motdepasse1")
	for i := range n {
		if _, err := writer.DB().ExecContext(ctx, "INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', ?)",
			uuid.Must(uuid.NewV7()).String(), 30+i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := writer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return srv
}

func countCells(t *testing.T, r *device.Replica) int {
	t.Helper()
	return relaistest.CountCells(t, r.DB(), nil)
}

// sameData fails the test unless the device holds exactly the server's
// rows and cell versions.
func sameData(t *testing.T, srv *relaistest.Server, r *device.Replica) {
	t.Helper()
	ctx := context.Background()
	schema, err := replica.LoadSchema(ctx, srv.DB().R)
	if err != nil {
		t.Fatal(err)
	}
	_, want, err := relaistest.DumpReplica(ctx, srv.DB().R, schema)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := relaistest.DumpReplica(ctx, r.DB(), schema)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("the device differs from the server: %s", relaistest.FirstDiff(want, got))
	}
}

// TestRetryOfAPageAheadIsToldBySync: a page requested ahead (while the
// one before is applied) that meets a server error is retried, and the
// retry reaches Options.Progress from the goroutine running Sync, as
// documented, not from the exchange's: under -race, the old way read
// the report while Sync wrote it. The callback below keeps its notices
// without a lock on purpose.
func TestRetryOfAPageAheadIsToldBySync(t *testing.T) {
	ctx := context.Background()
	srv := serverWithActivities(t, 60)
	link := &faultyLink{n: 3, armed: true}
	link.fault = func(req *http.Request) (*http.Response, error) {
		link.disarm() // once
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	}
	var retries []error
	var last device.Progress
	var elsewhere []string // goroutines other than Sync's that told progress
	syncing := goroutine()
	puller := relaistest.OpenDevice(t, "puller", device.Options{
		HTTPClient: &http.Client{Transport: link},
		PageLimit:  20,
		RetryFor:   10 * time.Second,
		Progress: func(p device.Progress) {
			if g := goroutine(); g != syncing {
				elsewhere = append(elsewhere, g)
			}
			last = p
			if p.Retry != nil {
				retries = append(retries, p.Retry)
			}
		},
	})
	if err := puller.Login(ctx, srv.URL, "a@example.fr", "motdepasse1"); err != nil {
		t.Fatal(err)
	}
	rep, err := puller.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(elsewhere) > 0 {
		t.Errorf("progress told from %s, not from the goroutine running Sync (%s)", elsewhere, syncing)
	}
	if len(retries) != 1 {
		t.Fatalf("%d retries told (%v), want the one of the page that met a 503", len(retries), retries)
	}
	if last.Pulled != rep.Pulled || rep.Pulled == 0 {
		t.Errorf("last progress says %d cells pulled, the report %d", last.Pulled, rep.Pulled)
	}
	sameData(t, srv, puller)
}

// goroutine names the calling goroutine ("goroutine 42"), from the first
// line of its stack.
func goroutine() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	name, _, _ := strings.Cut(string(buf), " [")
	return name
}
