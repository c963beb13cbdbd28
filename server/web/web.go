// Package web is the coordinators' and conseillers' dashboard: French,
// server-rendered pages served by the Relais server under "/" (conflicts,
// fleet, statistics, exports), and the JSON API the pages are built on
// under /v1/dashboard/.
//
// Pages are plain HTML forms rendered with html/template, so they work
// without JavaScript on the cheapest tablet. A browser holds a session
// cookie (HttpOnly, SameSite=Lax, Secure and __Host- over HTTPS); every form carries the
// session's CSRF token. Tools may call the JSON API with a bearer access
// token instead of a cookie.
//
// What a user sees follows one rule, in access.go: a conseiller sees what
// is theirs, a coordinator also what belongs to the conseillers they
// coordinate (through server/scope), an administrator everything; the
// fields the sync scopes keep from coordinators (a beneficiary's identity,
// an activity's notes) are shown only to the conseiller who owns the row.
package web

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/server/reqbody"
	syncscope "github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Deps is what the dashboard needs from the server. The server package
// builds it; keeping it a plain struct avoids an import cycle.
type Deps struct {
	DB       *store.DB
	Accounts *auth.Accounts
	Schema   func() *syncproto.Schema
	// WriteRowAs writes cells as the server on behalf of a person, with a
	// fresh clock, through the merge engine (server.WriteRowAs): a
	// resolution reaches every device at its next pull. It checks the
	// write as a pushed change is checked (types, scope, the domain's
	// rules) and answers a refusal with a *syncproto.Error.
	WriteRowAs func(ctx context.Context, tx *sql.Tx, who syncscope.Who, table, pk string, values map[string]any) error
	// Bearer checks an access token for API callers that are not browsers.
	Bearer func(ctx context.Context, token string) (auth.Principal, error)
	// RevokeDevice revokes a device on behalf of actorID: the server's
	// own revocation, which also ends the device's refresh tokens, so
	// that the dashboard revokes exactly as the API does. Required.
	RevokeDevice func(ctx context.Context, actorID, deviceID string) error
	// TrustedProxies are the reverse proxies whose X-Forwarded-Proto is
	// believed (see HTTPS); empty trusts none.
	TrustedProxies []netip.Prefix
	// ServerNode is the server's own node id, the author of its writes.
	ServerNode string
	Now        func() time.Time
	Log        *slog.Logger
	// SessionIdle and SessionMax bound a browser session (defaults 2 h
	// idle, 12 h in all: a working day on a shared tablet).
	SessionIdle, SessionMax time.Duration
	// LoginLimits counts failed logins, with the devices' login.
	LoginLimits *auth.LoginLimits
	// Body bounds a request body read once the sender is logged in;
	// PreAuthBody one read before (the login form). Zero values take the
	// server's defaults (8 MiB ×4 once inflated; 64 KiB).
	Body, PreAuthBody reqbody.Limits
	// Authenticated, when set, is told when a request's sender is known
	// (a session or a bearer token checked): the server bounds only the
	// requests still anonymous.
	Authenticated func(c *fiber.Ctx)
}

// Handler serves the dashboard.
type Handler struct {
	d     Deps
	pages map[string]*template.Template
	loc   *time.Location
}

// New builds the handler and parses its templates.
func New(d Deps) (*Handler, error) {
	if d.RevokeDevice == nil {
		return nil, errors.New("dashboard: Deps.RevokeDevice is required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Body.Max == 0 {
		d.Body = reqbody.Limits{Max: 8 << 20, Ratio: 4}
	}
	if d.PreAuthBody.Max == 0 {
		d.PreAuthBody = reqbody.Limits{Max: 64 << 10, Ratio: 4}
	}
	if d.SessionIdle == 0 {
		d.SessionIdle = 2 * time.Hour
	}
	if d.SessionMax == 0 {
		d.SessionMax = 12 * time.Hour
	}
	h := &Handler{d: d, pages: map[string]*template.Template{}, loc: paris()}
	base, err := template.New("layout.html").Funcs(h.funcs()).ParseFS(templateFS, "templates/layout.html", "templates/_partials.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard templates: %w", err)
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" || strings.HasPrefix(name, "_") {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("dashboard template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	return h, nil
}

// Mount registers the pages under "/" and the JSON API under
// /v1/dashboard on app.
func (h *Handler) Mount(app *fiber.App) {
	static, _ := fs.Sub(staticFS, "static") // the directory is embedded above
	app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(static), MaxAge: 3600}))

	app.Get("/connexion", h.loginPage)
	app.Post("/connexion", h.preAuthBody, h.loginSubmit)
	app.Post("/deconnexion", h.page, h.logout)

	app.Get("/", h.page, func(c *fiber.Ctx) error { return c.Redirect("/conflits", fiber.StatusSeeOther) })
	app.Get("/conflits", h.page, h.conflictsPage)
	app.Get("/conflits/:id", h.page, h.conflictPage)
	app.Post("/conflits/:id/resolution", h.page, h.conflictResolveForm)
	app.Get("/flotte", h.page, h.fleetPage)
	app.Get("/flotte/:id/revocation", h.page, h.fleetRevokeConfirm)
	app.Post("/flotte/:id/revocation", h.page, h.fleetRevokeForm)
	app.Get("/statistiques", h.page, h.statsPage)
	app.Get("/exports", h.page, h.exportsPage)
	app.Get("/exports/:file", h.page, h.exportFile)

	api := app.Group("/v1/dashboard", h.api)
	api.Get("/me", h.apiMe)
	api.Get("/conflicts", h.apiConflicts)
	api.Get("/conflicts/:id", h.apiConflict)
	api.Post("/conflicts/:id/resolve", h.apiResolve)
	api.Get("/devices", h.apiDevices)
	api.Post("/devices/:id/revoke", h.apiRevoke)
	api.Get("/stats", h.apiStats)
	api.Get("/activities", h.apiActivities)
}

// preAuthBody reads the login form's body, before anyone is logged in,
// under the small pre-authentication limit.
func (h *Handler) preAuthBody(c *fiber.Ctx) error {
	if err := h.readBody(c, h.d.PreAuthBody); err != nil {
		return h.errorPage(c, bodyStatus(err), "Le formulaire envoyé est illisible ou trop volumineux.")
	}
	return c.Next()
}

// readBody reads the request body through the server's one limited reader
// (package reqbody); nothing in the dashboard reads a body before it.
func (h *Handler) readBody(c *fiber.Ctx, lim reqbody.Limits) error {
	if err := reqbody.Read(c, lim); err != nil {
		c.Context().SetConnectionClose() // the rest of the body stays unread
		return err
	}
	return nil
}

// loggedInBody reads the body of a request whose sender is now known,
// under the full limit, and tells the server the sender is known.
func (h *Handler) loggedInBody(c *fiber.Ctx) error {
	if h.d.Authenticated != nil {
		h.d.Authenticated(c)
	}
	return h.readBody(c, h.d.Body)
}

// bodyStatus is the HTTP status of a body refused by reqbody.
func bodyStatus(err error) int {
	switch syncproto.CodeOf(err) {
	case syncproto.CodeBodyTooLarge:
		return fiber.StatusRequestEntityTooLarge
	case syncproto.CodeUnsupportedEncoding:
		return fiber.StatusUnsupportedMediaType
	}
	return fiber.StatusBadRequest
}

// pageData is what every page template receives.
type pageData struct {
	Title  string
	Nav    string
	Viewer *Viewer
	CSRF   string
	Notice string
	Error  string
	Data   any
}

// render writes a page with the layout around it.
func (h *Handler) render(c *fiber.Ctx, status int, name string, pd pageData) error {
	t, ok := h.pages[name]
	if !ok {
		return fmt.Errorf("dashboard: no template %q", name)
	}
	if s := session(c); s != nil {
		pd.Viewer, pd.CSRF = &s.Viewer, s.CSRF
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout.html", pd); err != nil {
		return fmt.Errorf("dashboard: render %s: %w", name, err)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set("Cache-Control", "no-store")
	// The pages need no script and no other origin: a strict policy
	// makes an injected script inert, and framing (clickjacking on the
	// revoke button) impossible.
	c.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "same-origin")
	return c.Status(status).SendString(b.String())
}

// errorPage answers a page request with a French message and a status.
// NotFoundPage answers 404 with a French page, for a browser asking for
// an address the dashboard does not have.
func (h *Handler) NotFoundPage(c *fiber.Ctx) error {
	return h.errorPage(c, fiber.StatusNotFound, "Cette page n'existe pas. Vérifiez l'adresse, ou repartez des liens du menu : Conflits, Flotte, Statistiques, Exports.")
}

func (h *Handler) errorPage(c *fiber.Ctx, status int, msg string) error {
	return h.render(c, status, "erreur", pageData{Title: "Erreur", Error: msg})
}

// pageError turns an error from the data layer into a page: the
// dashboard's own refusals keep their status and French message, anything
// else is logged and answered with a generic message.
func (h *Handler) pageError(c *fiber.Ctx, err error) error {
	var ue *userError
	if errors.As(err, &ue) {
		return h.errorPage(c, ue.status, ue.msg)
	}
	h.d.Log.Error("dashboard page failed", "path", c.Path(), "err", err)
	return h.errorPage(c, fiber.StatusInternalServerError, "Une erreur interne est survenue ; elle a été consignée.")
}

// userError is a refusal meant for the person using the dashboard: an
// HTTP status, a message in French, and a stable code for the JSON API.
type userError struct {
	status int
	code   syncproto.Code
	msg    string
}

func (e *userError) Error() string { return e.msg }

func notFound(msg string) error {
	return &userError{status: fiber.StatusNotFound, code: syncproto.CodeNotFound, msg: msg}
}

func forbidden(msg string) error {
	return &userError{status: fiber.StatusForbidden, code: syncproto.CodeForbidden, msg: msg}
}

func badRequest(msg string) error {
	return &userError{status: fiber.StatusBadRequest, code: syncproto.CodeMalformedBody, msg: msg}
}
