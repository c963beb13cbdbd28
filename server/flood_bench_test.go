package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/syncproto"
)

// The flood of BenchmarkFlood: floodDevices conseillers, each on her own
// device, push floodRounds times the largest batch the server accepts
// (syncproto.MaxBatchChanges cells: 500 new activities of ten cells),
// all at once. quietExchanges bounds the small exchanges of each phase.
const (
	floodDevices   = 8
	floodRounds    = 16
	quietExchanges = 400
	baselineRounds = 60
)

// BenchmarkFlood measures whether one user can still starve the others
// (issue 11): how long a conseillère's one-row push takes, over HTTP on
// the real server, alone (baseline) and while eight other conseillers'
// devices push 5,000-change batches as fast as the server answers them.
// It reports the small exchange's p50 and p99 in milliseconds for both
// phases, measured in one run; with -v it also logs each small exchange's
// latency under the flood and the server's writer-queue metrics:
//
//	go test -run '^$' -bench Flood -benchtime 1x -v ./server/
//
// The devices run in this process, so under the flood they share the CPU
// with the server; the figures are those of one machine with two cores.
func BenchmarkFlood(b *testing.B) {
	srv := relaistest.StartServer(b, server.Config{})
	type dev struct {
		p     auth.Principal
		token string
		clock *syncproto.Clock
	}
	login := func(email string) dev {
		u := srv.AddUser(b, email, auth.RoleConseiller, password)
		id := uuid.Must(uuid.NewV7()).String()
		tok := srv.LoginHTTP(b, email, password, id)
		return dev{
			p:     auth.Principal{UserID: u.ID, DeviceID: id, Role: auth.RoleConseiller},
			token: tok.AccessToken,
			clock: syncproto.NewClock(time.Now, 0, 0),
		}
	}
	quiet := login("quiet@exemple.fr")
	flooders := make([]dev, floodDevices)
	for i := range flooders {
		flooders[i] = login(fmt.Sprintf("flood%d@exemple.fr", i))
	}
	client := &http.Client{Timeout: 5 * time.Minute}

	// exchange sends one request of d and returns the answer's cursor.
	exchange := func(d dev, body []byte) (int64, error) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+syncproto.PathSync, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+d.token)
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		if err != nil {
			return 0, err
		}
		if res.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("sync: %d %.300s", res.StatusCode, raw)
		}
		resp, err := syncproto.DecodeResponse(raw)
		if err != nil {
			return 0, err
		}
		if resp.Applied == 0 {
			return 0, fmt.Errorf("sync: nothing applied: %.300s", raw)
		}
		return resp.Cursor, nil
	}
	encode := func(d dev, perBatch int, cursor int64) []byte {
		body, err := json.Marshal(&syncproto.SyncRequest{
			Push: activityBatch(d.clock, d.p, perBatch), Cursor: cursor, Clock: d.clock.Now(), RefuseRows: true,
		})
		if err != nil {
			b.Fatalf("encode: %v", err)
		}
		return body
	}

	// quietLoop runs the small exchange until stop is closed (or n times
	// when stop is nil), at most quietExchanges times, and returns each
	// exchange's latency.
	var quietCursor int64
	quietLoop := func(n int, stop <-chan struct{}) []time.Duration {
		var lat []time.Duration
		for i := 0; i < quietExchanges && (stop != nil || i < n); i++ {
			if stop != nil {
				select {
				case <-stop:
					return lat
				default:
				}
			}
			body := encode(quiet, 1, quietCursor)
			start := time.Now()
			cursor, err := exchange(quiet, body)
			if err != nil {
				b.Fatalf("small exchange: %v", err)
			}
			lat = append(lat, time.Since(start))
			quietCursor = cursor
		}
		return lat
	}

	var base, flood, big []time.Duration
	var floodWall time.Duration
	b.ResetTimer()
	for range b.N {
		base = append(base, quietLoop(baselineRounds, nil)...)

		// Batches are encoded before the flood starts, so that the CPU
		// spent during it is the server's and the HTTP clients'.
		bodies := make([][][]byte, floodDevices)
		for i, d := range flooders {
			for range floodRounds {
				bodies[i] = append(bodies[i], encode(d, syncproto.MaxBatchChanges/10, 0))
			}
		}
		stop := make(chan struct{})
		errs := make(chan error, floodDevices)
		var wg sync.WaitGroup
		start := time.Now()
		var mu sync.Mutex
		for i, d := range flooders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, body := range bodies[i] {
					t0 := time.Now()
					if _, err := exchange(d, body); err != nil {
						errs <- fmt.Errorf("flood device %d: %w", i, err)
						return
					}
					mu.Lock()
					big = append(big, time.Since(t0))
					mu.Unlock()
				}
			}()
		}
		go func() { wg.Wait(); close(stop) }()
		flood = append(flood, quietLoop(0, stop)...)
		<-stop
		floodWall += time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if testing.Verbose() {
		s := slices.Clone(flood)
		slices.Sort(s)
		b.Logf("small exchanges under the flood, sorted: %v", s)
		// Where the time goes: the writer's queue (group commit) and
		// the groups' sizes, from the server's own metrics.
		res, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			b.Fatalf("metrics: %v", err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "relais_writer_wait_seconds") || strings.HasPrefix(line, "relais_write_group_size") {
				b.Log(line)
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(base, 50)), "base-p50-ms")
	b.ReportMetric(ms(percentile(base, 99)), "base-p99-ms")
	b.ReportMetric(ms(percentile(flood, 50)), "flood-p50-ms")
	b.ReportMetric(ms(percentile(flood, 99)), "flood-p99-ms")
	b.ReportMetric(ms(slices.Max(flood)), "flood-max-ms")
	slow := 0
	for _, d := range flood {
		if d > 500*time.Millisecond {
			slow++
		}
	}
	b.ReportMetric(100*float64(slow)/float64(len(flood)), "flood-%over500ms")
	b.ReportMetric(ms(percentile(big, 50)), "push5000-p50-ms")
	b.ReportMetric(float64(len(flood))/float64(b.N), "flood-exchanges/op")
	b.ReportMetric(floodWall.Seconds()/float64(b.N), "flood-s/op")
}

// percentile is the p-th percentile of d (nearest rank).
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}
