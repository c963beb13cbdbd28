package server_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// login enrols deviceID over HTTP and returns its access token.
func login(t *testing.T, url, email, deviceID string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password, "device_id": deviceID})
	res, err := http.Post(url+"/v1/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ans syncproto.TokenResponse
	if err := json.NewDecoder(res.Body).Decode(&ans); err != nil || ans.AccessToken == "" {
		t.Fatalf("login: status %d, %v", res.StatusCode, err)
	}
	return ans.AccessToken
}

// stateHash fingerprints everything a sync could write on the server.
func stateHash(t *testing.T, srv *relaistest.Server) string {
	t.Helper()
	dump := relaistest.CellsText(t, srv.DB().R, true, true) + relaistest.Dump(t, srv.DB().R,
		"SELECT device_id, id FROM _batches ORDER BY device_id, id",
		"SELECT COUNT(*) FROM _conflicts",
		"SELECT seq, hlc FROM _replica",
		"SELECT * FROM activite ORDER BY id")
	return fmt.Sprintf("%x", sha256.Sum256([]byte(dump)))
}

func gz(data []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func TestBadInputIsRefusedAndStoresNothing(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		srv := e.Start(t, server.Config{BodyLimit: 1 << 20, MaxClockAhead: time.Minute})
		srv.AddUser(t, "camille@exemple.fr", "admin", password)
		dev := newID()
		token := login(t, srv.URL, "camille@exemple.fr", dev)

		now := syncproto.FromTime(time.Now())
		good := func(col string, val any) map[string]any {
			return map[string]any{"tbl": "activite", "pk": "0192f1a0-0000-7000-8000-0000000000aa", "col": col, "val": val, "ver": []any{now, dev}}
		}
		push := func(changes ...map[string]any) []byte {
			b, _ := json.Marshal(map[string]any{"push": map[string]any{"id": newID(), "changes": changes}})
			return b
		}
		// Something stored first, so "untouched" is about existing data too.
		seed := push(good("type", "individuel"), good("duree", 30))
		if code, body := post(t, srv.URL, token, seed, nil); code != 200 {
			t.Fatalf("seed push: %d %s", code, body)
		}

		future := good("duree", 45)
		future["ver"] = []any{syncproto.FromTime(time.Now().Add(48 * time.Hour)), dev}
		otherNode := good("duree", 45)
		otherNode["ver"] = []any{now, "someone-else"}
		many := make([]map[string]any, syncproto.MaxBatchChanges+1)
		for i := range many {
			many[i] = good("duree", i)
		}

		tests := []struct {
			name    string
			token   string
			body    []byte
			headers map[string]string
			status  int
			code    syncproto.Code
		}{
			{"malformed JSON", token, []byte(`{"push": {"id": "x", "changes": [`), nil, 400, syncproto.CodeMalformedBody},
			{"not an object", token, []byte(`[1, 2, 3]`), nil, 400, syncproto.CodeMalformedBody},
			{"unknown table", token, push(good("type", "x"), map[string]any{"tbl": "nope", "pk": "0192f1a0-0000-7000-8000-0000000000aa", "col": "x", "val": 1, "ver": []any{now, dev}}), nil, 400, syncproto.CodeUnknownTable},
			{"unknown column", token, push(good("nope", "x")), nil, 400, syncproto.CodeUnknownColumn},
			{"column carrying SQL", token, push(good(`type" = 'x'; DROP TABLE activite; --`, "x")), nil, 400, syncproto.CodeUnknownColumn},
			{"bookkeeping table", token, push(map[string]any{"tbl": "_users", "pk": "0192f1a0-0000-7000-8000-0000000000aa", "col": "role", "val": "admin", "ver": []any{now, dev}}), nil, 400, syncproto.CodeUnknownTable},
			{"value of the wrong type", token, push(good("type", "ok"), good("duree", "trente")), nil, 400, syncproto.CodeBadValue},
			{"far-future clock", token, push(good("type", "ok"), future), nil, 400, syncproto.CodeClockAhead},
			{"another node's version", token, push(otherNode), nil, 400, syncproto.CodeBadChange},
			{"too many changes", token, push(many...), nil, 400, syncproto.CodeTooManyChanges},
			// Issue 11: what the attack stored, and must not.
			{"JSON true into an integer", token, push(good("type", "ok"), good("duree", true)), nil, 400, syncproto.CodeBadValue},
			{"NUL character in text", token, push(good("type", "individu\x00el")), nil, 400, syncproto.CodeBadValue},
			{"app version of 500 KB", token, []byte(`{"cursor": 0, "app": "` + strings.Repeat("v", 500<<10) + `"}`), nil, 400, syncproto.CodeMalformedBody},
			{"app version with a control character", token, []byte(`{"cursor": 0, "app": "1.0\u001b[2J"}`), nil, 400, syncproto.CodeMalformedBody},
			{"oversized body", token, append([]byte(`{"cursor": 0, "pad": "`), append(bytes.Repeat([]byte("x"), 1100<<10), '"', '}')...), nil, 413, syncproto.CodeBodyTooLarge},
			{"gzip bomb", token, gz(append([]byte(`{"cursor": 0, "pad": "`), bytes.Repeat([]byte("0"), 64<<20)...)), map[string]string{"Content-Encoding": "gzip"}, 413, syncproto.CodeBodyTooLarge},
			{"broken gzip", token, []byte("\x1f\x8b not really gzip"), map[string]string{"Content-Encoding": "gzip"}, 400, syncproto.CodeMalformedBody},
			{"unsupported encoding", token, []byte(`{}`), map[string]string{"Content-Encoding": "br"}, 415, syncproto.CodeUnsupportedEncoding},
			{"missing token", "", push(good("duree", 45)), nil, 401, syncproto.CodeUnauthorized},
			{"invalid token", "not.a.token", push(good("duree", 45)), nil, 401, syncproto.CodeUnauthorized},
			{"tampered token", token[:len(token)-4] + "AAAA", push(good("duree", 45)), nil, 401, syncproto.CodeUnauthorized},
		}
		before := stateHash(t, srv)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, body := post(t, srv.URL, tt.token, tt.body, tt.headers)
				var eb syncproto.ErrorBody
				if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
					t.Fatalf("status %d, body is not an error envelope: %.200s", status, body)
				}
				if status != tt.status || eb.Error.Code != tt.code {
					t.Fatalf("got %d %s (%s), want %d %s", status, eb.Error.Code, eb.Error.Message, tt.status, tt.code)
				}
				if eb.Error.Message == "" {
					t.Fatal("an error must say what was wrong")
				}
				if tt.code == syncproto.CodeClockAhead && eb.Error.Details["server_time"] == nil {
					t.Fatal("clock_ahead must give the server time")
				}
				if after := stateHash(t, srv); after != before {
					t.Fatal("a refused request changed the stored data")
				}
			})
		}
		if status, _ := get(t, srv.URL+"/healthz"); status != 200 {
			t.Fatalf("server unhealthy after hostile input: %d", status)
		}
	})
}

// post sends one request over a raw connection, writing the body while it
// reads the answer: a server refusing an oversized body answers 413 and
// closes without reading the rest, and a client that insists on writing
// everything first sees only a reset connection.
func post(t *testing.T, url, token string, body []byte, headers map[string]string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/sync", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	conn, err := net.Dial("tcp", req.URL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() { _ = req.Write(conn) }() // may fail once the server has answered
	res, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// TestKeysDifferingInCaseAreOneRow: two pushes naming one UUID, in upper
// and in lower case, write one row on the server, under the lower-case
// key (issue 11: they made two rows).
func TestKeysDifferingInCaseAreOneRow(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "camille@exemple.fr", "admin", password)
		dev := newID()
		token := login(t, srv.URL, "camille@exemple.fr", dev)
		pk := newID()
		for i, key := range []string{strings.ToUpper(pk), pk} {
			b, _ := json.Marshal(map[string]any{"push": map[string]any{"id": newID(), "changes": []map[string]any{
				{"tbl": "activite", "pk": key, "col": "duree", "val": 30 + i, "ver": []any{syncproto.FromTime(time.Now()), dev}},
			}}})
			if status, body := post(t, srv.URL, token, b, nil); status != 200 {
				t.Fatalf("push under %s: %d %s", key, status, body)
			}
		}
		var rows, cells int
		if err := srv.DB().R.QueryRow("SELECT COUNT(*) FROM activite WHERE lower(id) = ?", pk).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		relaistest.CountCells(t, srv.DB().R, func(c relaistest.Cell) bool {
			if c.Table == "activite" && strings.ToLower(c.PK) == pk {
				keys[c.PK] = true
			}
			return true
		})
		cells = len(keys)
		if rows != 1 || cells != 1 {
			t.Fatalf("one UUID in two cases made %d rows and %d cell keys, want 1 and 1", rows, cells)
		}
	})
}
