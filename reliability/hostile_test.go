package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestHostileRequests sends a table of hostile requests to the real HTTP
// server. Each gets the status and error code the README documents, the
// server keeps answering, and the synced data (tables, cells, batches,
// conflicts) hashes the same before and after.
func TestHostileRequests(t *testing.T) {
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{})
	srv.AddUser(t, "hostile@relais.test", "admin", "mot-de-passe-hostile")
	dev := uuid.Must(uuid.NewV7()).String()
	login, _ := json.Marshal(map[string]string{"email": "hostile@relais.test", "password": "mot-de-passe-hostile", "device_id": dev})
	res, err := http.Post(srv.URL+"/v1/auth/login", "application/json", bytes.NewReader(login))
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&ans); err != nil || ans.AccessToken == "" {
		t.Fatalf("login: %d %v", res.StatusCode, err)
	}
	res.Body.Close()
	token := ans.AccessToken

	// Some data first, so "unchanged" means something.
	pk := uuid.Must(uuid.NewV7()).String()
	now := syncproto.FromTime(time.Now())
	good := func(extra ...syncproto.Change) []byte {
		ch := []syncproto.Change{{Table: "activite", PK: pk, Column: "duree", Value: 45, Version: syncproto.Version{HLC: now, Node: dev}}}
		ch = append(ch, extra...)
		b, _ := json.Marshal(syncproto.SyncRequest{Push: &syncproto.Batch{ID: uuid.NewString(), Changes: ch}})
		return b
	}
	post(t, srv.URL+"/v1/sync", token, "", good(), http.StatusOK, "")
	before := dumpServer(t, srv)

	change := func(tbl, pk, col string, val any, node string, hlc syncproto.Timestamp) syncproto.Change {
		return syncproto.Change{Table: tbl, PK: pk, Column: col, Value: val, Version: syncproto.Version{HLC: hlc, Node: node}}
	}
	many := make([]syncproto.Change, syncproto.MaxBatchChanges+1)
	for i := range many {
		many[i] = change("activite", pk, "notes", "x", dev, now+syncproto.Timestamp(i))
	}
	manyBody, _ := json.Marshal(syncproto.SyncRequest{Push: &syncproto.Batch{ID: "b", Changes: many}})
	batch := func(chs ...syncproto.Change) []byte {
		b, _ := json.Marshal(syncproto.SyncRequest{Push: &syncproto.Batch{ID: uuid.NewString(), Changes: chs}})
		return b
	}
	far := syncproto.FromTime(time.Now().Add(time.Hour))
	bomb := gzipped(make([]byte, 40<<20)) // 40 MiB of zeros, about 40 KB compressed

	cases := []struct {
		name   string
		path   string
		token  string
		enc    string
		body   []byte
		status int
		code   syncproto.Code
	}{
		{"not JSON", "/v1/sync", token, "", []byte("<html>"), 400, syncproto.CodeMalformedBody},
		{"empty body", "/v1/sync", token, "", nil, 400, syncproto.CodeMalformedBody},
		{"two documents", "/v1/sync", token, "", []byte(`{"cursor":0}{"cursor":0}`), 400, syncproto.CodeMalformedBody},
		{"nested 100k deep", "/v1/sync", token, "", []byte(strings.Repeat("[", 100000)), 400, syncproto.CodeMalformedBody},
		{"negative cursor", "/v1/sync", token, "", []byte(`{"cursor":-5}`), 400, syncproto.CodeMalformedBody},
		{"batch without id", "/v1/sync", token, "", []byte(`{"push":{"changes":[]}}`), 400, syncproto.CodeMalformedBody},
		{"batch id of 65 chars", "/v1/sync", token, "", []byte(`{"push":{"id":"` + strings.Repeat("a", 65) + `","changes":[]}}`), 400, syncproto.CodeMalformedBody},
		{"brotli body", "/v1/sync", token, "br", []byte("x"), 415, syncproto.CodeUnsupportedEncoding},
		{"gzip header, garbage", "/v1/sync", token, "gzip", []byte("\x1f\x8bnot gzip at all"), 400, syncproto.CodeMalformedBody},
		{"gzip cut short", "/v1/sync", token, "gzip", gzipped(good())[:20], 400, syncproto.CodeMalformedBody},
		{"decompression bomb", "/v1/sync", token, "gzip", bomb, 413, syncproto.CodeBodyTooLarge},
		{"5001 changes", "/v1/sync", token, "", manyBody, 400, syncproto.CodeTooManyChanges},
		{"unknown table", "/v1/sync", token, "", batch(change("_users", pk, "role", "admin", dev, now+1)), 400, syncproto.CodeUnknownTable},
		{"table name injection", "/v1/sync", token, "", batch(change("activite; DROP TABLE activite; --", pk, "duree", 1, dev, now+1)), 400, syncproto.CodeUnknownTable},
		{"column name injection", "/v1/sync", token, "", batch(change("activite", pk, `duree" = 0; --`, 1, dev, now+1)), 400, syncproto.CodeUnknownColumn},
		{"key not a UUID", "/v1/sync", token, "", batch(change("activite", "1 OR 1=1", "duree", 1, dev, now+1)), 400, syncproto.CodeBadChange},
		{"another node's version", "/v1/sync", token, "", batch(change("activite", pk, "duree", 1, uuid.NewString(), now+1)), 400, syncproto.CodeBadChange},
		{"no version", "/v1/sync", token, "", batch(change("activite", pk, "duree", 1, dev, 0)), 400, syncproto.CodeBadChange},
		{"text into an integer", "/v1/sync", token, "", batch(change("activite", pk, "duree", "trois", dev, now+1)), 400, syncproto.CodeBadValue},
		{"integer overflow", "/v1/sync", token, "", []byte(`{"push":{"id":"x","changes":[{"tbl":"activite","pk":"` + pk + `","col":"duree","val":1e400,"ver":[` + fmt.Sprint(int64(now+1)) + `,"` + dev + `"]}]}}`), 400, syncproto.CodeBadValue},
		{"tombstone of 2", "/v1/sync", token, "", batch(change("activite", pk, "_deleted", 2, dev, now+1)), 400, syncproto.CodeBadValue},
		{"text over 32 KiB", "/v1/sync", token, "", batch(change("activite", pk, "notes", strings.Repeat("é", 20000), dev, now+1)), 400, syncproto.CodeBadValue},
		{"valid change then a bad one", "/v1/sync", token, "", good(change("activite", pk, "duree", "x", dev, now+2)), 400, syncproto.CodeBadValue},
		{"clock an hour ahead", "/v1/sync", token, "", batch(change("activite", pk, "duree", 1, dev, far)), 400, syncproto.CodeClockAhead},
		{"no token", "/v1/sync", "", "", good(), 401, syncproto.CodeUnauthorized},
		{"garbage token", "/v1/sync", "abc.def.ghi", "", good(), 401, syncproto.CodeUnauthorized},
		{"unsigned token", "/v1/sync", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4IiwiZGlkIjoieSJ9.", "", good(), 401, syncproto.CodeUnauthorized},
		{"token with a flipped bit", "/v1/sync", flip(token), "", good(), 401, syncproto.CodeUnauthorized},
		{"login, not JSON", "/v1/auth/login", "", "", []byte("{"), 400, syncproto.CodeMalformedBody},
		{"login, wrong password", "/v1/auth/login", "", "", []byte(`{"email":"hostile@relais.test","password":"non","device_id":"` + uuid.NewString() + `"}`), 401, syncproto.CodeBadCredentials},
		{"unknown endpoint", "/v1/../../etc/passwd", "", "", nil, 404, syncproto.CodeNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			post(t, srv.URL+c.path, c.token, c.enc, c.body, c.status, c.code)
			res, err := http.Get(srv.URL + "/healthz")
			if err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("server down after %q: %v", c.name, err)
			}
			res.Body.Close()
		})
	}
	// The same kinds of request in the column form of a push: the server
	// reads it by its Content-Type, through the same limited reader and
	// checks.
	columns := func(chs ...syncproto.Change) []byte {
		b, err := syncproto.EncodeRequestColumns(&syncproto.SyncRequest{Push: &syncproto.Batch{ID: uuid.NewString(), Changes: chs}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	manyColumns, err := syncproto.EncodeRequestColumns(&syncproto.SyncRequest{Push: &syncproto.Batch{ID: "b", Changes: many}})
	if err != nil {
		t.Fatal(err)
	}
	// A million tables with empty names: two bytes each on the wire.
	emptyTables := binary.AppendUvarint([]byte("RQ\x01\x02{}"), 1<<20)
	emptyTables = append(emptyTables, make([]byte, 2<<20)...)
	columnCases := []struct {
		name   string
		enc    string
		body   []byte
		status int
		code   syncproto.Code
	}{
		{"not the column form", "", []byte("<html>"), 400, syncproto.CodeMalformedBody},
		{"JSON named as columns", "", good(), 400, syncproto.CodeMalformedBody},
		{"a million empty tables", "", emptyTables, 400, syncproto.CodeMalformedBody},
		{"decompression bomb", "gzip", bomb, 413, syncproto.CodeBodyTooLarge},
		{"5001 changes", "", manyColumns, 400, syncproto.CodeTooManyChanges},
		{"table name injection", "", columns(change("activite; DROP TABLE activite; --", pk, "duree", 1, dev, now+1)), 400, syncproto.CodeUnknownTable},
		{"another node's version", "", columns(change("activite", pk, "duree", 1, uuid.NewString(), now+1)), 400, syncproto.CodeBadChange},
		{"text into an integer", "", columns(change("activite", pk, "duree", "trois", dev, now+1)), 400, syncproto.CodeBadValue},
		{"clock an hour ahead", "", columns(change("activite", pk, "duree", 1, dev, far)), 400, syncproto.CodeClockAhead},
	}
	for _, c := range columnCases {
		t.Run("columns: "+c.name, func(t *testing.T) {
			postAs(t, srv.URL+"/v1/sync", token, syncproto.MediaTypeColumns, c.enc, c.body, c.status, c.code)
			res, err := http.Get(srv.URL + "/healthz")
			if err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("server down after %q: %v", c.name, err)
			}
			res.Body.Close()
		})
	}
	// A body over the limit is refused on its Content-Length, before it
	// is read: the server answers and closes while a client would still
	// be sending, so this one is spoken over a raw connection that sends
	// the headers and the first 8 KiB only (what the server's streaming
	// reader takes in before any handler runs), then reads the answer.
	t.Run("body over the limit", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(srv.URL, "http://"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "POST /v1/sync HTTP/1.1\r\nHost: relais\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{%s", token, 9<<20, strings.Repeat(" ", 8<<10))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		defer res.Body.Close()
		var eb syncproto.ErrorBody
		_ = json.NewDecoder(res.Body).Decode(&eb)
		if res.StatusCode != http.StatusRequestEntityTooLarge || eb.Error == nil || eb.Error.Code != syncproto.CodeBodyTooLarge {
			t.Errorf("got %d %+v, want 413 body_too_large", res.StatusCode, eb.Error)
		}
	})
	if after := dumpServer(t, srv); after != before {
		t.Errorf("hostile requests changed the synced data: %s", after)
	}
	_ = ctx
}

// flip changes one character in the middle of a token's signature.
func flip(tok string) string {
	i := len(tok) - 10
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

func post(t *testing.T, url, token, enc string, body []byte, status int, code syncproto.Code) {
	t.Helper()
	postAs(t, url, token, "application/json", enc, body, status, code)
}

// postAs is post with another Content-Type.
func postAs(t *testing.T, url, token, ctype, enc string, body []byte, status int, code syncproto.Code) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.Header.Get("Content-Encoding") == "gzip" {
		if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
			raw, _ = io.ReadAll(zr)
		}
	}
	got := syncproto.Code("")
	var eb syncproto.ErrorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Error != nil {
		got = eb.Error.Code
	}
	if res.StatusCode != status || got != code {
		t.Errorf("got %d %q, want %d %q: %.200s", res.StatusCode, got, status, code, raw)
	}
}

// dumpServer hashes what hostile input must never change: the synced
// tables and cells, the applied batches and the conflict log.
func dumpServer(t *testing.T, srv *relaistest.Server) string {
	t.Helper()
	h, _ := dumpDB(t, srv.DB().R)
	var batches, conflicts int
	if err := srv.DB().R.QueryRow("SELECT (SELECT COUNT(*) FROM _batches), (SELECT COUNT(*) FROM _conflicts)").Scan(&batches, &conflicts); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s/%d batches/%d conflicts", h, batches, conflicts)
}
