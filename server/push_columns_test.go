package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// requestTypes records the Content-Type of every exchange request a
// device sends, in order. With older set, it answers a request in the
// column form itself, as a server that does not read it would (400
// malformed_body), and never lists the form in Accept-Post.
type requestTypes struct {
	mu    sync.Mutex
	sent  []string
	older bool
}

func (rt *requestTypes) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != syncproto.PathSync {
		return http.DefaultTransport.RoundTrip(req)
	}
	ctype := req.Header.Get("Content-Type")
	rt.mu.Lock()
	rt.sent = append(rt.sent, ctype)
	older := rt.older
	rt.mu.Unlock()
	if older && syncproto.IsColumns(ctype) {
		body := `{"error":{"code":"malformed_body","message":"body is not a valid exchange: invalid character 'R' looking for beginning of value"}}`
		return &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && older {
		res.Header.Del(syncproto.HeaderAcceptPost)
	}
	return res, err
}

func (rt *requestTypes) types() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]string(nil), rt.sent...)
}

func insertActivities(t *testing.T, r *device.Replica, n int, note string) {
	t.Helper()
	for i := range n {
		exec(t, r, "INSERT INTO activite (id, type, date, duree, type_lieu, commune, notes) VALUES (?, 'individuel', '2026-11-02', ?, 'domicile', 'Laval', ?)",
			newID(), 15*(i%4+1), fmt.Sprintf("%s %d, é\n", note, i))
	}
}

// The SDK pushes in JSON until an answer says the server reads the
// column form, then pushes in columns; a device that pushes only JSON
// (an SDK of before) syncs with the same server; both end with the
// server's rows, and each pushed write reached the server once.
func TestPushFormIsNegotiated(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "camille@exemple.fr", "admin", password)
		newer, older := &requestTypes{}, &requestTypes{}
		a := relaistest.OpenDevice(t, "newer", device.Options{HTTPClient: &http.Client{Transport: newer}, BatchSize: 7})
		b := relaistest.OpenDevice(t, "older", device.Options{HTTPClient: &http.Client{Transport: older}, BatchSize: 7, PushJSON: true})
		for _, r := range []*device.Replica{a, b} {
			if err := r.Login(context.Background(), srv.URL, "camille@exemple.fr", password); err != nil {
				t.Fatal(err)
			}
		}
		insertActivities(t, a, 20, "tablette récente")
		insertActivities(t, b, 20, "tablette ancienne")
		for range 2 {
			for _, r := range []*device.Replica{a, b} {
				mustSync(t, r)
			}
		}
		sentA, sentB := newer.types(), older.types()
		if len(sentA) < 4 || sentA[0] != "application/json" {
			t.Fatalf("the newer device sent %v: want its first push in JSON (it knew nothing of the server yet), then more", sentA)
		}
		// Its pushes after the first went in columns; its pull-only
		// requests in JSON (all head, nothing to put in columns).
		columns := 0
		for _, ct := range sentA[1:] {
			if syncproto.IsColumns(ct) {
				columns++
			}
		}
		if columns < 2 {
			t.Fatalf("the newer device sent %v: want its pushes after the first in %s", sentA, syncproto.MediaTypeColumns)
		}
		for _, ct := range sentB {
			if ct != "application/json" {
				t.Fatalf("the device that pushes JSON sent %v", sentB)
			}
		}
		want := tableDump(t, srv.DB().R)
		if n := countRows(t, srv, "activite"); n != 40 {
			t.Fatalf("the server holds %d activities, want 40", n)
		}
		for _, r := range []*device.Replica{a, b} {
			if got := tableDump(t, r.DB()); got != want {
				t.Fatalf("device %s differs from the server:\n%s\nvs\n%s", r.Node(), got, want)
			}
		}
		var conflicts int
		cells := relaistest.CountCells(t, srv.DB().R, func(c relaistest.Cell) bool { return c.Table == "activite" })
		if err := srv.DB().R.QueryRow("SELECT COUNT(*) FROM _conflicts").Scan(&conflicts); err != nil {
			t.Fatal(err)
		}
		// Six columns written per activity (an administrator's rows get
		// no owner filled in).
		if cells != 40*6 || conflicts != 0 {
			t.Fatalf("server: %d cells of activite and %d conflicts, want 240 and none", cells, conflicts)
		}
	})
}

// A device whose server is replaced by an older one (that neither lists
// nor reads the column form) has its column push refused as unreadable:
// it sends the same request again in JSON, within the same sync, and
// nothing is lost or set aside.
func TestPushFallsBackToJSON(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "camille@exemple.fr", "admin", password)
		rt := &requestTypes{}
		r := relaistest.OpenDevice(t, "tablette", device.Options{HTTPClient: &http.Client{Transport: rt}})
		if err := r.Login(context.Background(), srv.URL, "camille@exemple.fr", password); err != nil {
			t.Fatal(err)
		}
		insertActivities(t, r, 3, "avant")
		mustSync(t, r) // learns that the server reads columns
		rt.mu.Lock()
		rt.older, rt.sent = true, nil
		rt.mu.Unlock()
		insertActivities(t, r, 5, "après")
		rep := mustSync(t, r)
		sent := rt.types()
		if len(sent) != 2 || !syncproto.IsColumns(sent[0]) || sent[1] != "application/json" {
			t.Fatalf("sent %v: want the push in columns, refused, then the same in JSON", sent)
		}
		if rep.Pushed != 5*6 || rep.Rejected != 0 {
			t.Fatalf("report %+v: want 30 cells pushed, none set aside", rep)
		}
		if got, want := tableDump(t, r.DB()), tableDump(t, srv.DB().R); got != want || countRows(t, srv, "activite") != 8 {
			t.Fatalf("device and server differ, or not 8 activities:\n%s\nvs\n%s", got, want)
		}
		// The next push goes in JSON straight away: the answer said nothing
		// of columns.
		rt.mu.Lock()
		rt.sent = nil
		rt.mu.Unlock()
		insertActivities(t, r, 1, "encore")
		mustSync(t, r)
		if sent := rt.types(); len(sent) != 1 || sent[0] != "application/json" {
			t.Fatalf("sent %v after the fallback, want one JSON request", sent)
		}
	})
}

func countRows(t *testing.T, srv *relaistest.Server, table string) int {
	t.Helper()
	var n int
	if err := srv.DB().R.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// postColumns posts a request in the column form, gzip-compressed, and
// returns the status, the Accept-Post header and the answer.
func postColumns(t *testing.T, srv *relaistest.Server, token, ctype string, body []byte) (int, string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+syncproto.PathSync, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header.Get(syncproto.HeaderAcceptPost), raw
}

// The server reads a push in the column form by its Content-Type, through
// the same limited reader and checks as JSON: it applies it like the
// same push in JSON, refuses a body that is not the form it names, and a
// body that inflates beyond the limit.
func TestServerReadsColumnPush(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		srv := e.Start(t, server.Config{BodyLimit: 64 << 10})
		admin := srv.AddUser(t, "camille@exemple.fr", "admin", password)
		dev := newID()
		tok := srv.LoginHTTP(t, admin.Email, password, dev).AccessToken
		clock := syncproto.NewClock(time.Now, 0, 0)
		act := newID()
		var changes []syncproto.Change
		for _, col := range []struct {
			name string
			val  any
		}{{"mediateur_id", admin.ID}, {"type", "individuel"}, {"duree", int64(45)}, {"type_lieu", "domicile"}, {"commune", "Laval"}} {
			changes = append(changes, syncproto.Change{Table: "activite", PK: act, Column: col.name, Value: col.val,
				Version: syncproto.Version{HLC: clock.Now(), Node: dev}})
		}
		req := &syncproto.SyncRequest{Push: &syncproto.Batch{ID: newID(), Changes: changes}, Clock: clock.Now(), RefuseRows: true}
		body, err := syncproto.EncodeRequestColumns(req)
		if err != nil {
			t.Fatal(err)
		}

		status, acceptPost, raw := postColumns(t, srv, tok, "application/json", body)
		if status != http.StatusBadRequest || !strings.Contains(string(raw), "malformed_body") {
			t.Fatalf("the column form sent as JSON: %d %s, want 400 malformed_body", status, raw)
		}
		if !syncproto.AcceptsColumns(acceptPost) || !strings.Contains(acceptPost, "application/json") {
			t.Fatalf("Accept-Post %q, want both forms listed", acceptPost)
		}
		status, _, raw = postColumns(t, srv, tok, syncproto.MediaTypeColumns+"; charset=binary", body)
		if status != http.StatusOK {
			t.Fatalf("column push: %d %s", status, raw)
		}
		var resp syncproto.SyncResponse
		if err := json.Unmarshal(raw, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Ack != req.Push.ID || resp.Applied != len(changes) {
			t.Fatalf("answer %+v: want the batch acknowledged with its %d cells", resp, len(changes))
		}
		var duree int
		if err := srv.DB().R.QueryRow("SELECT duree FROM activite WHERE id = ?", act).Scan(&duree); err != nil || duree != 45 {
			t.Fatalf("server row: duree %d, %v", duree, err)
		}
		// The same batch again, in JSON: acknowledged again, applied once.
		js, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		status, _, raw = postColumns(t, srv, tok, "application/json", js)
		if status != http.StatusOK || !strings.Contains(string(raw), `"ack":"`+req.Push.ID+`"`) {
			t.Fatalf("the batch again in JSON: %d %s", status, raw)
		}

		bad := append(bytes.Clone(body), 0)
		if status, _, raw = postColumns(t, srv, tok, syncproto.MediaTypeColumns, bad); status != http.StatusBadRequest || !strings.Contains(string(raw), "malformed_body") {
			t.Fatalf("a column body with a byte too many: %d %s", status, raw)
		}
		// A value of 1 MiB: 1 KiB once compressed, but 16 times the limit
		// (64 KiB) once inflated, and more than the allowed ratio.
		big := &syncproto.SyncRequest{Push: &syncproto.Batch{ID: newID(), Changes: []syncproto.Change{{Table: "activite", PK: act,
			Column: "notes", Value: strings.Repeat("a", 1<<20), Version: syncproto.Version{HLC: clock.Now(), Node: dev}}}}}
		if body, err = syncproto.EncodeRequestColumns(big); err != nil {
			t.Fatal(err)
		}
		if status, _, raw = postColumns(t, srv, tok, syncproto.MediaTypeColumns, body); status != http.StatusRequestEntityTooLarge {
			t.Fatalf("an inflating column body: %d %s, want 413", status, raw)
		}
	})
}
