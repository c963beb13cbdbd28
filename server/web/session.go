package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/syncproto"
)

const (
	sessionCookie   = "relais_session"
	loginCSRFCookie = "relais_login_csrf"
	csrfField       = "_csrf"
	csrfHeader      = "X-CSRF-Token"
)

// sess is a logged-in browser session.
type sess struct {
	Viewer
	CSRF string
}

type sessKey struct{}

func session(c *fiber.Ctx) *sess {
	s, _ := c.Locals(sessKey{}).(*sess)
	return s
}

func viewer(c *fiber.Ctx) Viewer {
	if s := session(c); s != nil {
		return s.Viewer
	}
	v, _ := c.Locals(viewerKey{}).(Viewer)
	return v
}

type viewerKey struct{}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func sameToken(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// HTTPS reports whether the browser reached the server over TLS: the
// connection itself is TLS, or it comes from one of the trusted proxies
// (addresses or networks) and that proxy's X-Forwarded-Proto says https.
// Any other client's X-Forwarded-Proto is ignored: it says what the
// client likes. This is the one decision behind Secure cookies and their
// __Host- prefix; anything else that depends on HTTPS asks here too.
func HTTPS(c *fiber.Ctx, trusted []netip.Prefix) bool {
	if c.Context().IsTLS() {
		return true
	}
	if len(trusted) == 0 {
		return false
	}
	ip, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			// A proxy chain may append: the first value is the client's.
			proto, _, _ := strings.Cut(c.Get(fiber.HeaderXForwardedProto), ",")
			return strings.EqualFold(strings.TrimSpace(proto), "https")
		}
	}
	return false
}

// cookieName is the name of one of the dashboard's cookies for this
// request: over HTTPS it carries the __Host- prefix, which makes the
// browser refuse it unless it is Secure, set by this very host (no
// Domain) and for the whole site (Path=/): a neighbouring subdomain or a
// plain-HTTP page cannot plant or overwrite it.
func (h *Handler) cookieName(c *fiber.Ctx, base string) string {
	if HTTPS(c, h.d.TrustedProxies) {
		return "__Host-" + base
	}
	return base
}

// setCookie sets a cookie the browser keeps away from scripts and from
// cross-site requests, Secure (and __Host-) whenever the page came over
// HTTPS.
func (h *Handler) setCookie(c *fiber.Ctx, base, value string, maxAge time.Duration) {
	c.Cookie(&fiber.Cookie{
		Name: h.cookieName(c, base), Value: value, Path: "/",
		MaxAge: int(maxAge.Seconds()), HTTPOnly: true,
		Secure: HTTPS(c, h.d.TrustedProxies), SameSite: fiber.CookieSameSiteLaxMode,
	})
}

func (h *Handler) clearCookie(c *fiber.Ctx, base string) {
	c.Cookie(&fiber.Cookie{Name: h.cookieName(c, base), Value: "", Path: "/", MaxAge: -1, HTTPOnly: true,
		Secure: HTTPS(c, h.d.TrustedProxies), SameSite: fiber.CookieSameSiteLaxMode})
}

// cookie reads one of the dashboard's cookies under its name for this
// request.
func (h *Handler) cookie(c *fiber.Ctx, base string) string {
	return c.Cookies(h.cookieName(c, base))
}

// bodyField reads a field of a form body (URL-encoded or multipart),
// never of the query string: a CSRF token in a URL leaks through logs,
// history and Referer headers, so one found there is ignored.
func bodyField(c *fiber.Ctx, name string) string {
	if v := c.Request().PostArgs().Peek(name); len(v) > 0 {
		return string(v)
	}
	if f, err := c.MultipartForm(); err == nil {
		if vs := f.Value[name]; len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// loadSession returns the session named by the cookie, extending its idle
// expiry, or nil when there is none that is valid (unknown, expired, or
// its user disabled since).
func (h *Handler) loadSession(c *fiber.Ctx) (*sess, error) {
	tok := h.cookie(c, sessionCookie)
	if tok == "" {
		return nil, nil
	}
	now := h.d.Now()
	ctx := c.UserContext()
	s := &sess{}
	var created, lastSeen, expires int64
	err := h.d.DB.R.QueryRowContext(ctx, `SELECT s.user_id, u.email, COALESCE(u.name, ''), u.role, s.csrf, s.created_at, s.last_seen_at, s.expires_at
		FROM _web_sessions s JOIN _users u ON u.id = s.user_id
		WHERE s.token_hash = ? AND u.disabled_at IS NULL`, hashToken(tok)).
		Scan(&s.UserID, &s.Email, &s.Name, &s.Role, &s.CSRF, &created, &lastSeen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	if now.UnixMilli() >= expires || now.Sub(time.UnixMilli(lastSeen)) >= h.d.SessionIdle {
		_, _ = h.d.DB.W.ExecContext(ctx, "DELETE FROM _web_sessions WHERE token_hash = ?", hashToken(tok))
		return nil, nil
	}
	// Touch at most once a minute, and in the background: reading a page
	// must not wait for the single writer, which a long job (retention, a
	// big batch) may hold. A touch that fails only shortens the session.
	if now.Sub(time.UnixMilli(lastSeen)) > time.Minute {
		go h.touch(hashToken(tok), now)
	}
	return s, nil
}

func (h *Handler) touch(tokenHash string, now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := h.d.DB.W.ExecContext(ctx, "UPDATE _web_sessions SET last_seen_at = ?1 WHERE token_hash = ?2 AND last_seen_at < ?1",
		now.UnixMilli(), tokenHash); err != nil {
		h.d.Log.Warn("dashboard session not extended", "err", err)
	}
}

// page guards a dashboard page: no session sends the browser to the login
// page; a form without the session's CSRF token is refused.
func (h *Handler) page(c *fiber.Ctx) error {
	privateAnswer(c)
	s, err := h.loadSession(c)
	if err != nil {
		return h.pageError(c, err)
	}
	if s == nil {
		if c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead {
			return c.Redirect("/connexion?suite="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
		}
		return h.errorPage(c, fiber.StatusUnauthorized, "Votre session a expiré. Reconnectez-vous, puis recommencez.")
	}
	c.Locals(sessKey{}, s)
	if err := h.loggedInBody(c); err != nil {
		return h.errorPage(c, bodyStatus(err), "Le formulaire envoyé est illisible ou trop volumineux.")
	}
	if !safeMethod(c) && !sameToken(bodyField(c, csrfField), s.CSRF) {
		h.d.Log.Warn("dashboard form refused: CSRF token missing or wrong", "path", c.Path(), "user", s.UserID)
		return h.errorPage(c, fiber.StatusForbidden, "Le formulaire n'a pas de jeton de sécurité valide. Rechargez la page, puis recommencez.")
	}
	return c.Next()
}

// api guards the JSON API: a bearer access token (tools), or the session
// cookie with the CSRF token in the X-CSRF-Token header for anything that
// changes data (the same protection as the pages' forms).
func (h *Handler) api(c *fiber.Ctx) error {
	privateAnswer(c)
	if bearer, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer "); ok && h.d.Bearer != nil {
		p, err := h.d.Bearer(c.UserContext(), bearer)
		if err != nil {
			return apiFail(c, err)
		}
		u, err := h.d.Accounts.UserByID(c.UserContext(), p.UserID)
		if err != nil {
			return apiFail(c, err)
		}
		c.Locals(viewerKey{}, Viewer{UserID: u.ID, Email: u.Email, Role: u.Role})
		if err := h.loggedInBody(c); err != nil {
			return apiFail(c, err)
		}
		return c.Next()
	}
	s, err := h.loadSession(c)
	if err != nil {
		return err
	}
	if s == nil {
		return apiFail(c, syncproto.Errorf(syncproto.CodeUnauthorized, "a session cookie or a bearer token is required"))
	}
	c.Locals(sessKey{}, s)
	if !safeMethod(c) && !sameToken(c.Get(csrfHeader), s.CSRF) {
		return apiFail(c, syncproto.Errorf(syncproto.CodeForbidden, "the X-CSRF-Token header is missing or wrong"))
	}
	if err := h.loggedInBody(c); err != nil {
		return apiFail(c, err)
	}
	return c.Next()
}

// privateAnswer marks an answer that may carry personal data: no cache
// (a shared tablet's browser, a proxy) keeps it, and no browser guesses
// another type than the one declared. Set before anything else, so that
// refusals carry it too.
func privateAnswer(c *fiber.Ctx) {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
}

func safeMethod(c *fiber.Ctx) bool {
	return c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead
}

// loginPage shows the login form. Before login there is no session to
// hold a CSRF token, so the form's token is double-submitted: one copy in
// a cookie, one in the form, and they must match (login CSRF would
// otherwise log a victim into the attacker's account).
func (h *Handler) loginPage(c *fiber.Ctx) error {
	tok := randomToken()
	h.setCookie(c, loginCSRFCookie, tok, time.Hour)
	return h.render(c, fiber.StatusOK, "connexion", pageData{Title: "Connexion", CSRF: tok,
		Data: loginForm{Next: safeNext(c.Query("suite"))}})
}

type loginForm struct {
	Email string
	Next  string
}

// loginAgain shows the login form again, with a fresh CSRF token and a
// message.
func (h *Handler) loginAgain(c *fiber.Ctx, status int, email, next, msg string) error {
	tok := randomToken()
	h.setCookie(c, loginCSRFCookie, tok, time.Hour)
	return h.render(c, status, "connexion", pageData{Title: "Connexion", CSRF: tok, Error: msg,
		Data: loginForm{Email: email, Next: next}})
}

// waitFrench says a wait in whole minutes, or seconds under a minute.
func waitFrench(d time.Duration) string {
	if d < time.Minute {
		n := int(math.Ceil(d.Seconds()))
		if n <= 1 {
			return "1 seconde"
		}
		return fmt.Sprintf("%d secondes", n)
	}
	n := int(math.Ceil(d.Minutes()))
	if n == 1 {
		return "1 minute"
	}
	return fmt.Sprintf("%d minutes", n)
}

func (h *Handler) loginSubmit(c *fiber.Ctx) error {
	form := loginForm{Email: strings.TrimSpace(c.FormValue("email")), Next: safeNext(c.FormValue("suite"))}
	again := func(status int, msg string) error { return h.loginAgain(c, status, form.Email, form.Next, msg) }
	if !sameToken(bodyField(c, csrfField), h.cookie(c, loginCSRFCookie)) {
		return again(fiber.StatusForbidden, "Le formulaire a expiré ou n'a pas de jeton de sécurité valide. Recommencez.")
	}
	// The limits of failed logins are the devices' login's, counted in
	// the database with it (auth.LoginLimits).
	if h.d.LoginLimits != nil {
		wait, err := h.d.LoginLimits.Wait(c.UserContext(), form.Email, c.IP())
		if err != nil {
			return h.pageError(c, err)
		}
		if wait > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			return again(fiber.StatusTooManyRequests, fmt.Sprintf(
				"Trop de tentatives de connexion ont échoué. Réessayez dans %s.", waitFrench(wait)))
		}
	}
	u, err := h.d.Accounts.CheckPassword(c.UserContext(), form.Email, c.FormValue("password"))
	if err != nil {
		switch syncproto.CodeOf(err) {
		case syncproto.CodeBadCredentials:
			if h.d.LoginLimits != nil {
				if ferr := h.d.LoginLimits.Failed(c.UserContext(), form.Email, c.IP()); ferr != nil {
					return h.pageError(c, ferr)
				}
			}
			return again(fiber.StatusUnauthorized, "Adresse e-mail ou mot de passe incorrect.")
		case syncproto.CodeUserDisabled:
			return again(fiber.StatusForbidden, "Ce compte est désactivé. Adressez-vous à votre coordinateur ou à l'administrateur.")
		}
		return h.pageError(c, err)
	}
	tok := randomToken()
	now := h.d.Now()
	if _, err := h.d.DB.W.ExecContext(c.UserContext(), `INSERT INTO _web_sessions
		(token_hash, user_id, csrf, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		hashToken(tok), u.ID, randomToken(), now.UnixMilli(), now.UnixMilli(), now.Add(h.d.SessionMax).UnixMilli()); err != nil {
		return h.pageError(c, fmt.Errorf("create session: %w", err))
	}
	// Expired sessions of anyone are swept at each login; there are few.
	if _, err := h.d.DB.W.ExecContext(c.UserContext(), "DELETE FROM _web_sessions WHERE expires_at <= ? OR last_seen_at <= ?",
		now.UnixMilli(), now.Add(-h.d.SessionIdle).UnixMilli()); err != nil {
		h.d.Log.Warn("sweep expired sessions", "err", err)
	}
	h.clearCookie(c, loginCSRFCookie)
	h.setCookie(c, sessionCookie, tok, h.d.SessionMax)
	h.d.Log.Info("dashboard login", "user", u.ID, "role", u.Role)
	next := form.Next
	if next == "" {
		next = "/"
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

func (h *Handler) logout(c *fiber.Ctx) error {
	if _, err := h.d.DB.W.ExecContext(c.UserContext(), "DELETE FROM _web_sessions WHERE token_hash = ?",
		hashToken(h.cookie(c, sessionCookie))); err != nil {
		return h.pageError(c, fmt.Errorf("end session: %w", err))
	}
	h.clearCookie(c, sessionCookie)
	return c.Redirect("/connexion", fiber.StatusSeeOther)
}

// safeNext keeps a post-login redirect on this site (an open redirect
// would help phishing): it is parsed as a URL, and only a path on this
// site is kept, with its query. A scheme, a host, user information, a
// control character anywhere (browsers drop tabs and newlines, so
// "/\t/host" reads as "//host"), or a path that does not start with a
// single "/" ("//host", "/\\host", which browsers read as "//host") sends
// the browser to the default page instead ("").
func safeNext(p string) string {
	if p == "" || len(p) > 2048 || hasControl(p) {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	// Both the text as sent and its decoded path must be a local path.
	for _, path := range []string{p, u.Path} {
		if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") || strings.HasPrefix(path, "/\\") || hasControl(path) {
			return ""
		}
	}
	return u.RequestURI()
}

// hasControl reports whether s holds an ASCII control character.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}
