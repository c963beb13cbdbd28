package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// scrape reads /metrics and returns each sample by its printed name and
// labels, e.g. `relais_exchanges_total{code="none",outcome="ok"}`.
func scrape(t *testing.T, url, token string) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics answered %d", res.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The metrics move as exchanges happen: after a known sequence of syncs
// (two devices, a concurrent write, a refused batch, a refused token),
// the exchange counts by outcome, the bytes, the changes applied, the
// conflicts, the refusals, the latency and pull-lag histograms and the
// devices seen all say exactly what happened.
func TestMetricsFollowExchanges(t *testing.T) {
	srv := relaistest.StartServer(t, server.Config{})
	srv.AddUser(t, "camille@exemple.fr", "admin", password)
	a := srv.LoggedInDevice(t, "a", "camille@exemple.fr", password)
	b := srv.LoggedInDevice(t, "b", "camille@exemple.fr", password)
	before := scrape(t, srv.URL, "")

	var reps []device.Report
	sync := func(r *device.Replica) { reps = append(reps, mustSync(t, r)) }
	row := newID()
	exec(t, a, "INSERT INTO activite (id, type, duree, commune) VALUES (?, 'individuel', 30, 'Laval')", row)
	sync(a)
	sync(b)
	exec(t, a, "UPDATE activite SET duree = 60 WHERE id = ?", row)
	exec(t, b, "UPDATE activite SET duree = 90 WHERE id = ?", row)
	sync(a)
	sync(b) // b's write meets a's: one conflict recorded
	sync(a)

	// A batch signed by another node is refused (bad_change); a request
	// without a token is refused before any exchange.
	mid := scrape(t, srv.URL, "")
	tok := srv.LoginHTTP(t, "camille@exemple.fr", password, newID()).AccessToken
	bad, _ := json.Marshal(map[string]any{"push": map[string]any{"id": newID(), "changes": []any{
		map[string]any{"tbl": "activite", "pk": row, "col": "duree", "val": 5, "ver": []any{syncproto.FromTime(time.Now()), "someone-else"}},
	}}})
	if status, _ := post(t, srv.URL, tok, bad, nil); status != http.StatusBadRequest {
		t.Fatalf("push of another node's change answered %d", status)
	}
	if status, _ := post(t, srv.URL, "", []byte(`{"cursor": 0}`), nil); status != http.StatusUnauthorized {
		t.Fatalf("exchange without a token answered %d", status)
	}

	after := scrape(t, srv.URL, "")
	delta := func(k string) float64 { return after[k] - before[k] }
	var exchanges, pushed, conflicts int
	var up, down int64
	for _, r := range reps {
		exchanges += r.Exchanges
		pushed += r.Pushed
		conflicts += r.Conflicts
		up += r.BytesUp
		down += r.BytesDown
	}
	checks := []struct {
		key  string
		want float64
	}{
		{`relais_exchanges_total{code="none",outcome="ok"}`, float64(exchanges)},
		{`relais_exchanges_total{code="bad_change",outcome="refused"}`, 1},
		{`relais_exchanges_total{code="unauthorized",outcome="refused"}`, 1},
		{`relais_refusals_total{code="bad_change"}`, 1},
		{`relais_changes_applied_total`, float64(pushed)},
		{`relais_conflicts_recorded_total`, float64(conflicts)},
		{`relais_exchange_duration_seconds_count`, float64(exchanges + 2)},
		{`relais_exchange_duration_seconds_bucket{le="+Inf"}`, float64(exchanges + 2)},
		// every sync ends caught up: its last pull leaves no lag
		{`relais_pull_lag_cells_bucket{le="0"}`, float64(exchanges)},
		{`relais_pull_lag_cells_count`, float64(exchanges)},
	}
	for _, c := range checks {
		if got := delta(c.key); got != c.want {
			t.Errorf("%s moved by %v, want %v", c.key, got, c.want)
		}
	}
	if conflicts != 1 || pushed < 4 {
		t.Errorf("the sequence did not go as planned: %d conflicts, %d pushed", conflicts, pushed)
	}
	// The two refused requests' bytes, exactly as sent; the devices' at
	// least what their reports say.
	if got, want := after["relais_exchange_received_bytes_total"]-mid["relais_exchange_received_bytes_total"], float64(len(bad)+len(`{"cursor": 0}`)); got != want {
		t.Errorf("bytes received by the refused requests: %v, want %v", got, want)
	}
	if got := mid["relais_exchange_received_bytes_total"] - before["relais_exchange_received_bytes_total"]; got < float64(up) || up == 0 {
		t.Errorf("bytes received moved by %v, devices sent %d", got, up)
	}
	if got := delta("relais_exchange_sent_bytes_total"); got < float64(down) {
		t.Errorf("bytes sent moved by %v, devices received %d", got, down)
	}
	if got := after["relais_devices_seen_last_day"]; got != 2 {
		t.Errorf("devices seen in the last day: %v, want 2 (the third login never exchanged)", got)
	}
	for _, k := range []string{`relais_writer_wait_seconds_count`, `go_goroutines`, `go_sql_max_open_connections{db_name="relais_read"}`, `go_sql_max_open_connections{db_name="relais_write"}`, `relais_sequence`} {
		if after[k] <= 0 {
			t.Errorf("%s = %v, want it above 0", k, after[k])
		}
	}
}

// /metrics answers only the allowed addresses, and only with the token
// when one is configured.
func TestMetricsAccess(t *testing.T) {
	tests := []struct {
		name   string
		cfg    server.Config
		token  string
		status int
	}{
		{"loopback by default", server.Config{}, "", http.StatusOK},
		{"address not allowed", server.Config{MetricsAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "", http.StatusForbidden},
		{"token missing", server.Config{MetricsToken: "s3cret-de-test"}, "", http.StatusUnauthorized},
		{"wrong token", server.Config{MetricsToken: "s3cret-de-test"}, "s3cret-de-tesX", http.StatusUnauthorized},
		{"right token", server.Config{MetricsToken: "s3cret-de-test"}, "s3cret-de-test", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := relaistest.StartServer(t, tt.cfg)
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body bytes.Buffer
			_, _ = body.ReadFrom(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("/metrics answered %d, want %d: %.200s", res.StatusCode, tt.status, body.String())
			}
			if ok := strings.Contains(body.String(), "relais_exchange_duration_seconds"); ok != (tt.status == http.StatusOK) {
				t.Fatalf("metrics in a %d answer: %v", res.StatusCode, ok)
			}
		})
	}
}
