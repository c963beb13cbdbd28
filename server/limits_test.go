package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// TestSlowClientsAreLetGo: a client that stops in its headers, or in a
// body it declared, loses its connection once the header or body timeout
// has passed, without a handler ever holding it (issue 11, failure 2).
func TestSlowClientsAreLetGo(t *testing.T) {
	srv := relaistest.StartServer(t, server.Config{HeaderTimeout: 300 * time.Millisecond, BodyTimeout: 600 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct{ name, sent string }{
		{"stuck in its headers", "POST /v1/sync HTTP/1.1\r\nHost: relais\r\nContent-Le"},
		{"stuck in its body", fmt.Sprintf("POST /v1/auth/login HTTP/1.1\r\nHost: relais\r\nContent-Length: %d\r\n\r\n{\"email\":", 8<<20)},
		{"idle after a request", "GET /healthz HTTP/1.1\r\nHost: relais\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.sent); err != nil {
				t.Fatal(err)
			}
			// The server must close the connection by itself; the
			// deadline only keeps a broken server from hanging the test.
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err = io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server kept the connection of a stalled client open")
			}
		})
	}
}

// TestAnonymousRequestsAreBounded: while MaxPreAuthRequests requests
// without a login are in a handler (here two refreshes waiting for the
// writer that the test holds), one more is answered rate_limited at
// once, with Retry-After; once they end, requests are served again.
func TestAnonymousRequestsAreBounded(t *testing.T) {
	srv := relaistest.StartServer(t, server.Config{MaxPreAuthRequests: 2})
	u := srv.AddUser(t, "camille@exemple.fr", "conseiller", password)
	tokens := []string{srv.LoginHTTP(t, u.Email, password, newID()).RefreshToken, srv.LoginHTTP(t, u.Email, password, newID()).RefreshToken}
	tx, err := srv.DB().W.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	statuses := make([]int, len(tokens))
	for i, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Post(srv.URL+"/v1/auth/refresh", "application/json",
				strings.NewReader(`{"refresh_token": "`+tok+`"}`))
			if err == nil {
				statuses[i] = res.StatusCode
				res.Body.Close()
			}
		}()
	}
	refused := false
	for range 500 {
		res, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests {
			if res.Header.Get("Retry-After") == "" {
				t.Error("rate_limited answer without Retry-After")
			}
			refused = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !refused {
		t.Fatal("a third anonymous request was served while two held the limit")
	}
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("refresh %d waiting for the writer: status %d, want 200 once it is free", i, s)
		}
	}
	res, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("after the anonymous requests ended: %d", res.StatusCode)
	}
}

// TestOneExchangePerDevice: while a device's exchange waits (here for the
// writer the test holds), a second exchange of the same device is
// answered rate_limited at once with Retry-After, instead of queueing
// more of its work in front of other devices; the first completes once
// the writer is free (issue 11: one user's eight pushes at once delayed
// the others by 14 s).
func TestOneExchangePerDevice(t *testing.T) {
	srv := relaistest.StartServer(t, server.Config{})
	u := srv.AddUser(t, "camille@exemple.fr", "admin", password)
	dev := newID()
	token := srv.LoginHTTP(t, u.Email, password, dev).AccessToken
	tx, err := srv.DB().W.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	push := func() []byte {
		return []byte(fmt.Sprintf(`{"push": {"id": %q, "changes": [{"tbl": "activite", "pk": %q, "col": "duree", "val": 30, "ver": [%d, %q]}]}}`,
			newID(), newID(), syncproto.FromTime(time.Now()), dev))
	}
	// Two exchanges at once: the one that arrives first waits for the
	// writer, the other must be answered at once.
	statuses := make(chan int, 2)
	for range 2 {
		go func() {
			status, _ := post(t, srv.URL, token, push(), nil)
			statuses <- status
		}()
	}
	var early int
	select {
	case early = <-statuses:
	case <-time.After(20 * time.Second):
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	late := <-statuses
	if early != http.StatusTooManyRequests || late != http.StatusOK {
		t.Fatalf("two exchanges of one device at once: answered %d while the writer was held, then %d; want 429, then 200", early, late)
	}
}
