package pwa_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/pwa"
)

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// The real server serves the embedded app at /app/, each file with its
// type, the app's security headers and a validator.
func TestServesTheApp(t *testing.T) {
	srv := relaistest.StartServer(t, server.Config{})
	cases := []struct {
		path, status, ctype, body string
	}{
		{"/app/", "200", "text/html; charset=utf-8", `<html lang="fr">`},
		{"/app/index.html", "200", "text/html; charset=utf-8", "manifest.webmanifest"},
		{"/app/app.js", "200", "text/javascript; charset=utf-8", ""},
		{"/app/sw.js", "200", "text/javascript; charset=utf-8", "relais-app-"},
		{"/app/app.css", "200", "text/css; charset=utf-8", ""},
		{"/app/manifest.webmanifest", "200", "application/manifest+json", `"start_url": "/app/"`},
		{"/app/icone-192.png", "200", "image/png", ""},
		{"/app/sdk/relais.js", "200", "text/javascript; charset=utf-8", ""},
		{"/app/sdk/relais-worker.js", "200", "text/javascript; charset=utf-8", ""},
		{"/app/sdk/sqlite3.wasm", "200", "application/wasm", "\x00asm"},
		{"/app/nexiste-pas.js", "404", "text/plain; charset=utf-8", "ne fait pas partie de l'application"},
		{"/app/../go.mod", "404", "", ""},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			res, body := get(t, srv.URL+c.path)
			if got := res.Status[:3]; got != c.status {
				t.Fatalf("status %s, want %s", res.Status, c.status)
			}
			if c.ctype != "" && res.Header.Get("Content-Type") != c.ctype {
				t.Errorf("Content-Type %q, want %q", res.Header.Get("Content-Type"), c.ctype)
			}
			if !strings.Contains(body, c.body) {
				t.Errorf("body lacks %q", c.body)
			}
			if c.status != "200" {
				return
			}
			for h, want := range map[string]string{"Content-Security-Policy": pwa.CSP, "X-Content-Type-Options": "nosniff",
				"Referrer-Policy": "same-origin", "Cache-Control": "no-cache"} {
				if got := res.Header.Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			etag := res.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			again, body := get(t, srv.URL+c.path, "If-None-Match", etag)
			if again.StatusCode != http.StatusNotModified || body != "" {
				t.Errorf("revalidation with its ETag answered %s with %d bytes, want 304 and nothing", again.Status, len(body))
			}
		})
	}
	post, err := http.Post(srv.URL+"/app/index.html", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode == http.StatusOK || post.Header.Get("Content-Security-Policy") == pwa.CSP {
		t.Errorf("POST /app/index.html answered %s from the app", post.Status)
	}
	res, _ := get(t, srv.URL+"/app")
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/app/" {
		t.Errorf("/app answers %s to %q, want a redirect to /app/", res.Status, res.Header.Get("Location"))
	}
}

// The policy lets SQLite's WebAssembly compile and the workers start,
// and nothing else: no inline or evaluated script, no other origin.
func TestCSPIsTight(t *testing.T) {
	directives := map[string]string{}
	for _, d := range strings.Split(pwa.CSP, ";") {
		if f := strings.Fields(d); len(f) > 0 {
			directives[f[0]] = strings.Join(f[1:], " ")
		}
	}
	want := map[string]string{
		"default-src": "'none'", "script-src": "'self' 'wasm-unsafe-eval'", "worker-src": "'self'", "connect-src": "'self'",
		"style-src": "'self'", "img-src": "'self' data:", "frame-ancestors": "'none'", "base-uri": "'none'", "form-action": "'none'",
	}
	for d, sources := range want {
		if directives[d] != sources {
			t.Errorf("%s is %q, want %q", d, directives[d], sources)
		}
	}
	for d, sources := range directives {
		for _, never := range []string{"'unsafe-inline'", "'unsafe-eval'", "*", "blob:", "http:", "https:"} {
			for _, s := range strings.Fields(sources) {
				if s == never {
					t.Errorf("%s allows %s", d, never)
				}
			}
		}
	}
}

func TestNewRefusesABrokenBuild(t *testing.T) {
	cases := map[string]fstest.MapFS{
		"no index.html":     {"app.js": {Data: []byte("x")}},
		"unknown extension": {"index.html": {Data: []byte("x")}, "data.zzqq": {Data: []byte("x")}},
	}
	for name, fsys := range cases {
		if _, err := pwa.New(fsys); err == nil {
			t.Errorf("%s: New accepted the build", name)
		}
	}
	if _, err := pwa.New(fstest.MapFS{"index.html": {Data: []byte("x")}}); err != nil {
		t.Errorf("a minimal build is refused: %v", err)
	}
}
