package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// rawSync posts an exchange request with the given Accept header (none
// when empty) and returns the answer's Content-Type and its bytes,
// gunzipped.
func rawSync(t *testing.T, srv *relaistest.Server, token, accept string, req syncproto.SyncRequest) (string, []byte) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hreq, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/sync", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept-Encoding", "gzip")
	hreq.Header.Set("Authorization", "Bearer "+token)
	if accept != "" {
		hreq.Header.Set("Accept", accept)
	}
	res, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("sync: %d %s", res.StatusCode, raw)
	}
	return res.Header.Get("Content-Type"), raw
}

// A device that does not ask for the column form (one built before it
// existed) gets the JSON answer it always had; one that asks gets the
// same page in columns. Both carry the same cells.
func TestAnswerFormatIsNegotiated(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "camille@exemple.fr", "admin", password)
		writer := srv.LoggedInDevice(t, "writer", "camille@exemple.fr", password)
		for i := range 20 {
			exec(t, writer, "INSERT INTO structure (id, nom, commune, latitude, itinerance) VALUES (?, ?, 'Laval', ?, 'fixe')",
				newID(), fmt.Sprintf("Structure %02d", i), 48.07+float64(i)/100)
		}
		mustSync(t, writer)
		tok := srv.LoginHTTP(t, "camille@exemple.fr", password, newID()).AccessToken

		req := syncproto.SyncRequest{Cursor: 0, Limit: 1000}
		tests := []struct {
			accept, wantType string
		}{
			{"", "application/json"},
			{"application/json", "application/json"},
			{syncproto.MediaTypeColumns + ";q=0, application/json", "application/json"},
			{syncproto.MediaTypeColumns + ", application/json", syncproto.MediaTypeColumns},
		}
		var pages []*syncproto.SyncResponse
		for _, tt := range tests {
			ctype, raw := rawSync(t, srv, tok, tt.accept, req)
			if !strings.HasPrefix(ctype, tt.wantType) {
				t.Fatalf("Accept %q: got %s, want %s", tt.accept, ctype, tt.wantType)
			}
			decode := syncproto.DecodeResponse
			if tt.wantType == syncproto.MediaTypeColumns {
				decode = syncproto.DecodeResponseColumns
			} else if !bytes.Contains(raw, []byte(`"rows":[[`)) {
				t.Fatalf("Accept %q: the JSON answer is not in today's rows form: %.200s", tt.accept, raw)
			}
			page, err := decode(raw)
			if err != nil {
				t.Fatalf("Accept %q: %v", tt.accept, err)
			}
			pages = append(pages, page)
		}
		jsonPage, colPage := pages[0], pages[len(pages)-1]
		if len(jsonPage.Changes) != 20*4 || len(colPage.Changes) != len(jsonPage.Changes) { // four columns written per row
			t.Fatalf("JSON page has %d cells, column page %d, want 80", len(jsonPage.Changes), len(colPage.Changes))
		}
		for i, j := range jsonPage.Changes {
			c := colPage.Changes[i]
			if n, ok := j.Value.(json.Number); ok {
				// JSON numbers are json.Number; the column form gives the
				// int64 or float64 the server read.
				if fmt.Sprint(c.Value) != n.String() {
					t.Fatalf("cell %d: JSON %v, columns %#v", i, n, c.Value)
				}
				j.Value = c.Value
			}
			if !reflect.DeepEqual(j, c) {
				t.Fatalf("cell %d: JSON %#v, columns %#v", i, j, c)
			}
		}
		// The clock moves between the two requests; the rest of the head is the same.
		if jsonPage.Cursor != colPage.Cursor || jsonPage.More != colPage.More || colPage.Clock < jsonPage.Clock {
			t.Fatalf("heads differ: %#v and %#v", jsonPage, colPage)
		}
	})
}

// contentTypes records the Content-Type of every answer a device gets.
type contentTypes struct {
	mu    sync.Mutex
	types map[string]int
}

func (c *contentTypes) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && req.URL.Path == "/v1/sync" {
		c.mu.Lock()
		c.types[res.Header.Get("Content-Type")]++
		c.mu.Unlock()
	}
	return res, err
}

// The SDK asks for the column form, gets it on every exchange, and ends
// with the server's rows.
func TestDeviceReadsColumns(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "camille@exemple.fr", "admin", password)
		writer := srv.LoggedInDevice(t, "writer", "camille@exemple.fr", password)
		for i := range 30 {
			exec(t, writer, "INSERT INTO activite (id, type, duree, commune, notes) VALUES (?, 'individuel', ?, 'Laval', ?)",
				newID(), 15*(i%4+1), fmt.Sprintf("note %d, é\n", i))
		}
		mustSync(t, writer)

		rec := &contentTypes{types: map[string]int{}}
		r := relaistest.OpenDevice(t, "reader", device.Options{HTTPClient: &http.Client{Transport: rec}, PageLimit: 40})
		if err := r.Login(context.Background(), srv.URL, "camille@exemple.fr", password); err != nil {
			t.Fatal(err)
		}
		rep := mustSync(t, r)
		if rep.Exchanges < 2 {
			t.Fatalf("%d exchanges; the test wants several pages", rep.Exchanges)
		}
		if len(rec.types) != 1 || rec.types[syncproto.MediaTypeColumns] != rep.Exchanges {
			t.Fatalf("answers' content types: %v, want %d in %s", rec.types, rep.Exchanges, syncproto.MediaTypeColumns)
		}
		if got, want := tableDump(t, r.DB()), tableDump(t, srv.DB().R); got != want {
			t.Fatalf("reader differs from server:\n%s\nvs\n%s", got, want)
		}
	})
}
