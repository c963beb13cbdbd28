package domain_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/syncproto"
)

// rawDevice pushes hand-made batches to a real server over HTTP, the way
// a device with no triggers (an old or foreign SDK, or a tampered one)
// could: the server must refuse on its own what the rules forbid.
type rawDevice struct {
	t     *testing.T
	url   string
	token string
	node  string
	last  syncproto.Timestamp
}

func newRawDevice(t *testing.T, srv *relaistest.Server, email, password string) *rawDevice {
	t.Helper()
	node := uuid.Must(uuid.NewV7()).String()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password, "device_id": node})
	res, err := http.Post(srv.URL+"/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer res.Body.Close()
	var ans struct {
		AccessToken string `json:"access_token"`
	}
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(res.Body)
		t.Fatalf("login: %d %s", res.StatusCode, raw)
	}
	if err := json.NewDecoder(res.Body).Decode(&ans); err != nil {
		t.Fatalf("login: %v", err)
	}
	return &rawDevice{t: t, url: srv.URL, token: ans.AccessToken, node: node}
}

// push sends one batch writing every column of row (and prev versions
// when given) and returns the server's protocol error, or nil.
func (d *rawDevice) push(table, pk string, row map[string]any) *syncproto.Error {
	d.t.Helper()
	ts := syncproto.Next(d.last, 0, syncproto.FromTime(time.Now()))
	d.last = ts
	var changes []syncproto.Change
	for _, col := range slices.Sorted(maps.Keys(row)) {
		changes = append(changes, syncproto.Change{Table: table, PK: pk, Column: col, Value: row[col],
			Version: syncproto.Version{HLC: ts, Node: d.node}})
	}
	req := syncproto.SyncRequest{Push: &syncproto.Batch{ID: uuid.Must(uuid.NewV7()).String(), Changes: changes}, Limit: 1, Clock: ts}
	body, err := json.Marshal(req)
	if err != nil {
		d.t.Fatal(err)
	}
	hr, _ := http.NewRequest(http.MethodPost, d.url+"/v1/sync", bytes.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+d.token)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		d.t.Fatalf("push: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK {
		return nil
	}
	return syncproto.DecodeError(res.StatusCode, raw)
}

// rowCount counts rows with this id in a table of the server.
func rowCount(t *testing.T, srv *relaistest.Server, table, pk string) int {
	t.Helper()
	var n int
	if err := srv.DB().R.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM "`+table+`" WHERE id = ?`, pk).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func cellCount(t *testing.T, srv *relaistest.Server, pk string) int {
	t.Helper()
	return relaistest.CountCells(t, srv.DB().R, func(c relaistest.Cell) bool { return c.PK == pk })
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func devOpts() device.Options { return device.Options{} }
