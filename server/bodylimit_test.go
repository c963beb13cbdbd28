package server_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// webSession logs a browser in on the dashboard's form and returns a
// client carrying the session cookie, with the session's CSRF token.
func webSession(t *testing.T, base, email string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	csrf := func(path string) string {
		res, err := cl.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		m := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindSubmatch(page)
		if m == nil {
			t.Fatalf("no CSRF token on %s (status %d)", path, res.StatusCode)
		}
		return string(m[1])
	}
	res, err := cl.PostForm(base+"/connexion", url.Values{"email": {email}, "password": {password}, "_csrf": {csrf("/connexion")}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("dashboard login: status %d", res.StatusCode)
	}
	return cl, csrf("/flotte/x/revocation")
}

// TestEveryRouteReadsBodiesThroughOneLimitedReader walks every route the
// server registers that accepts a body and sends it, with valid
// credentials, a gzip bomb (48 MiB of zeros in 47 KB), the same bomb with
// its size trailer zeroed (so only the limited reader can stop it), and a
// body compressed twice ("Content-Encoding: gzip, gzip"). Each is refused
// with 413 or 415, and answering it allocates a bounded amount of memory,
// far below what inflating the bomb would (a failure found by attacking
// the server).
func TestEveryRouteReadsBodiesThroughOneLimitedReader(t *testing.T) {
	srv := relaistest.StartServer(t, server.Config{BodyLimit: 1 << 20}) // 4 MiB once inflated
	admin := srv.AddUser(t, "dominique@exemple.fr", "admin", password)
	bearer := login(t, srv.URL, admin.Email, newID())
	browser, csrf := webSession(t, srv.URL, admin.Email)

	bomb := gz(make([]byte, 48<<20))
	lying := bytes.Clone(bomb)
	binary.LittleEndian.PutUint32(lying[len(lying)-4:], 0)
	twice := gz(gz([]byte(`{"choice": "keep_winner"}`)))
	cases := []struct {
		name, encoding string
		body           []byte
		status         []int
	}{
		{"gzip bomb", "gzip", bomb, []int{413}},
		{"gzip bomb with a lying size", "gzip", lying, []int{413}},
		{"compressed twice", "gzip, gzip", twice, []int{415}},
	}

	seen := map[string]bool{}
	for _, r := range srv.App().GetRoutes(true) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			continue
		}
		path := regexp.MustCompile(`:[a-z]+`).ReplaceAllString(r.Path, "1")
		if seen[r.Method+path] {
			continue
		}
		seen[r.Method+path] = true
		page := !strings.HasPrefix(path, "/v1/")
		for _, tc := range cases {
			t.Run(r.Method+" "+r.Path+"/"+tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(r.Method, srv.URL+path, bytes.NewReader(tc.body))
				req.Header.Set("Content-Encoding", tc.encoding)
				cl := http.DefaultClient
				if page {
					cl = browser
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				} else {
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+bearer)
					req.Header.Set("X-CSRF-Token", csrf)
				}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				res, err := cl.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				answer, _ := io.ReadAll(res.Body)
				res.Body.Close()
				runtime.ReadMemStats(&after)
				ok := false
				for _, s := range tc.status {
					ok = ok || res.StatusCode == s
				}
				if !ok {
					t.Fatalf("status %d, want %v: %.300s", res.StatusCode, tc.status, answer)
				}
				if !page && !bytes.Contains(answer, []byte(`"code"`)) {
					t.Fatalf("refusal without an error code: %.300s", answer)
				}
				if page && !bytes.Contains(answer, []byte("trop volumineux")) {
					t.Fatalf("refusal without its French message: %.300s", answer)
				}
				// Inflating the bomb would allocate 48 MiB at least; the
				// limited reader stops at 4 MiB (and some growth).
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 24<<20 {
					t.Fatalf("answering allocated %d MiB", alloc>>20)
				}
			})
		}
	}
	for _, want := range []string{"POST/v1/sync", "POST/v1/auth/login", "POST/v1/auth/refresh", "POST/v1/dashboard/conflicts/1/resolve", "POST/conflits/1/resolution", "POST/connexion"} {
		if !seen[want] {
			t.Errorf("route %s not walked", want)
		}
	}
}
