// Package pwa serves the conseillère's offline app (package app, built
// into the binary) at /app/ on the Relais server.
//
// Every file is read from the embedded build once, at start, with its
// content type and a strong ETag (its SHA-256): a tablet that comes back
// online revalidates its cached files in one round trip each and
// downloads only what a new version changed. Answers say no-cache rather
// than a lifetime, because the service worker, not the HTTP cache, is
// what keeps the app available offline, and it must see a new version at
// the next start. Headers follow the dashboard's (SECURITY.md): nosniff,
// a same-origin referrer, and a Content-Security-Policy as tight as an
// app that compiles SQLite's WebAssembly and runs workers allows.
package pwa

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/app"
)

// Prefix is where the app lives on the server. The service worker's
// scope is this path, so it never answers for the dashboard or the API.
const Prefix = "/app/"

// CSP is the app's Content-Security-Policy. Scripts, workers, styles,
// images and the manifest come from the server only; fetch and XHR reach
// only the server (the sync API); 'wasm-unsafe-eval' lets SQLite's
// WebAssembly compile and allows no eval of JavaScript; nothing may frame
// the app, and no form posts anywhere (the app has none that submit).
const CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self'; " +
	"style-src 'self'; img-src 'self' data:; manifest-src 'self'; font-src 'self'; form-action 'none'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// file is one file of the build, ready to serve.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves the app.
type Handler struct {
	files map[string]file
}

// types are the content types of the build's files; an extension not
// listed here is refused at start rather than sniffed by a browser.
var types = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".webmanifest": "application/manifest+json",
	".wasm":        "application/wasm",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".ico":         "image/x-icon",
	".txt":         "text/plain; charset=utf-8",
}

// New reads the app's files from fsys (app.Files() when nil).
func New(fsys fs.FS) (*Handler, error) {
	if fsys == nil {
		fsys = app.Files()
	}
	h := &Handler{files: map[string]file{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := types[path.Ext(p)]
		if !ok {
			if ct = mime.TypeByExtension(path.Ext(p)); ct == "" {
				return fmt.Errorf("app file %s: no content type for its extension", p)
			}
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("app file %s: %w", p, err)
		}
		sum := sha256.Sum256(body)
		h.files[p] = file{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if _, ok := h.files["index.html"]; !ok {
		return nil, fmt.Errorf("app: the build has no index.html (npm run build in app/)")
	}
	return h, nil
}

// Mount serves the app under Prefix, for GET and HEAD, as the dashboard
// serves its static files: files, not API routes (the OpenAPI document
// lists routes).
func (h *Handler) Mount(a *fiber.App) {
	a.Use(strings.TrimSuffix(Prefix, "/"), h.serve)
}

func (h *Handler) serve(c *fiber.Ctx) error {
	if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
		return c.Next()
	}
	if c.Path() == strings.TrimSuffix(Prefix, "/") {
		// The service worker's scope and the page's relative links
		// need the slash.
		return c.Redirect(Prefix, fiber.StatusMovedPermanently)
	}
	name := strings.TrimPrefix(c.Path(), Prefix)
	if name == "" {
		name = "index.html"
	}
	setHeaders(c)
	f, ok := h.files[name]
	if !ok {
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
		return c.Status(fiber.StatusNotFound).SendString("Ce fichier ne fait pas partie de l'application. Ouvrez " + Prefix + " pour la démarrer.")
	}
	c.Set(fiber.HeaderETag, f.etag)
	if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && etagMatches(match, f.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, f.contentType)
	return c.Send(f.body)
}

// setHeaders sets what every answer under Prefix carries.
func setHeaders(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", CSP)
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "same-origin")
	c.Set("Cache-Control", "no-cache")
}

// etagMatches reads an If-None-Match header: a list of tags, or "*".
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t), "W/"))
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
