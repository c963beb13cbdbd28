package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"

	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/server/reqbody"
	"github.com/relais-numerique/relais/syncproto"
)

func (s *Server) routes() *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:               "relais",
		DisableStartupMessage: true,
		// Fiber reuses request memory after a handler returns; Immutable
		// makes every string it hands us a copy, so nothing we keep (an
		// e-mail, a batch id) changes under our feet.
		Immutable:    true,
		BodyLimit:    s.cfg.BodyLimit,
		ErrorHandler: s.handleError,
		// Bodies are streamed: a connection holds a small read buffer, not
		// the body size it declares, until reqbody.Read runs, which is
		// after authentication wherever a login is needed.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true, // it would read a form before any handler
		// A client stuck in its headers, its body or its reading of the
		// answer is let go (SECURITY.md, "Limits and timeouts").
		ReadTimeout:  s.cfg.HeaderTimeout,
		WriteTimeout: s.cfg.WriteTimeout,
		IdleTimeout:  s.cfg.IdleTimeout,
		Concurrency:  s.cfg.MaxConnections,
	})
	// The header timeout also covers the body unless the request has one:
	// then the body gets its own, longer, time from the end of its headers.
	app.Server().HeaderReceived = func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		if h.ContentLength() != 0 {
			return fasthttp.RequestConfig{ReadTimeout: s.cfg.BodyTimeout}
		}
		return fasthttp.RequestConfig{}
	}
	s.preAuth = make(chan struct{}, s.cfg.MaxPreAuthRequests)
	app.Use(s.logRequests)
	app.Use(s.checkBody)
	app.Get("/healthz", s.handleHealthz)
	app.Get("/readyz", s.handleReadyz)
	app.Get("/metrics", s.metricsRoute())
	app.Get("/v1/openapi.json", handleOpenAPI)
	app.Get(syncproto.PathDeviceSchema, s.handleDeviceSchema)
	app.Post(syncproto.PathLogin, s.handleLogin)
	app.Post(syncproto.PathRefresh, s.handleRefresh)
	app.Post(syncproto.PathRevokeDevice, s.authenticate, s.handleRevokeDevice)
	app.Post(syncproto.PathSync, s.measureExchange, s.authenticate, s.handleSync)
	s.appRoutes(app)       // the conseillère's offline app under /app/
	s.dashboardRoutes(app) // the web dashboard: pages under "/", JSON under /v1/dashboard
	return app
}

// handleError answers errors that escaped a handler: Fiber's own (body
// too large, unknown route) get a protocol code, anything else is logged
// and answered "internal" without details.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var pe *syncproto.Error
	if errors.As(err, &pe) {
		return fail(c, pe)
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fiber.StatusRequestEntityTooLarge:
			return fail(c, syncproto.Errorf(syncproto.CodeBodyTooLarge, "request body is larger than %d bytes", s.cfg.BodyLimit))
		case fiber.StatusNotFound:
			if s.pageNotFound != nil && !strings.HasPrefix(c.Path(), "/v1/") && strings.Contains(c.Get(fiber.HeaderAccept), "text/html") {
				// A person at a browser: a page in French, not JSON.
				return s.pageNotFound(c)
			}
			return fail(c, syncproto.Errorf(syncproto.CodeNotFound, "no such endpoint: %s %s", c.Method(), c.Path()))
		case fiber.StatusMethodNotAllowed:
			return fail(c, syncproto.Errorf(syncproto.CodeNotFound, "method %s not allowed here", c.Method()))
		}
		return c.Status(fe.Code).JSON(syncproto.ErrorBody{Error: syncproto.Errorf(syncproto.CodeMalformedBody, "%s", fe.Message)})
	}
	s.log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
	return fail(c, syncproto.Errorf(syncproto.CodeInternal, "internal error; it has been logged"))
}

// checkBody refuses, before any handler runs, a body with an encoding
// the server does not decode or a declared length over the limit. The
// connection is closed after the answer: the unread body must not be
// taken for the next request.
//
// It also counts the request among those not yet authenticated, until
// authenticated (below) says otherwise or the request ends: past
// Config.MaxPreAuthRequests, a request is answered rate_limited at once.
func (s *Server) checkBody(c *fiber.Ctx) error {
	select {
	case s.preAuth <- struct{}{}:
	default:
		c.Set(fiber.HeaderRetryAfter, "1")
		c.Context().SetConnectionClose()
		return fail(c, syncproto.Errorf(syncproto.CodeRateLimited,
			"too many requests are waiting to be authenticated; retry in a second").With(syncproto.DetailRetryAfterSeconds, 1))
	}
	c.Locals(preAuthKey{}, new(atomic.Bool))
	defer s.authenticated(c)
	if err := reqbody.CheckHeaders(c, s.cfg.BodyLimit); err != nil {
		c.Context().SetConnectionClose()
		if !strings.HasPrefix(c.Path(), "/v1/") {
			// A dashboard page: the person at the browser reads French.
			return c.Status(statusOf(syncproto.CodeOf(err))).SendString("Le formulaire envoyé est illisible ou trop volumineux.")
		}
		return fail(c, err)
	}
	return c.Next()
}

type preAuthKey struct{}

// authenticated gives back the request's place among those not yet
// authenticated; the first call counts, later ones do nothing.
func (s *Server) authenticated(c *fiber.Ctx) {
	if done, ok := c.Locals(preAuthKey{}).(*atomic.Bool); ok && done.CompareAndSwap(false, true) {
		<-s.preAuth
	}
}

// bodyLimits bound a body read after authentication.
func (s *Server) bodyLimits() reqbody.Limits {
	return reqbody.Limits{Max: s.cfg.BodyLimit, Ratio: s.cfg.DecompressRatio}
}

// PreAuthBodyLimit bounds the body of a request read before its sender is
// known (login, refresh): their JSON is a few hundred bytes.
const PreAuthBodyLimit = 64 << 10

// body returns the request body as reqbody.Read left it: read under the
// full limit by authenticate, or, for the endpoints that come before
// authentication (login, refresh), read now under PreAuthBodyLimit.
func (s *Server) body(c *fiber.Ctx) ([]byte, error) {
	if err := reqbody.Read(c, reqbody.Limits{Max: PreAuthBodyLimit, Ratio: s.cfg.DecompressRatio}); err != nil {
		c.Context().SetConnectionClose()
		return nil, err
	}
	return c.Request().Body(), nil
}

// reply writes v as JSON, gzip-compressed when the client accepts it. An
// exchange answer goes in the column form instead when the device asks
// for it in its Accept header (syncproto.MediaTypeColumns); a device that
// does not ask gets the JSON answer it has always had.
func reply(c *fiber.Ctx, v any) error {
	var data []byte
	var err error
	ctype := fiber.MIMEApplicationJSON
	if resp, ok := v.(*syncproto.SyncResponse); ok && syncproto.AcceptsColumns(c.Get(fiber.HeaderAccept)) {
		data, err = syncproto.EncodeResponseColumns(resp)
		ctype = syncproto.MediaTypeColumns
	} else {
		data, err = json.Marshal(v)
	}
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	c.Set(fiber.HeaderContentType, ctype)
	c.Set(fiber.HeaderVary, "Accept, Accept-Encoding")
	if !strings.Contains(c.Get(fiber.HeaderAcceptEncoding), "gzip") || len(data) < 256 {
		return c.Send(data)
	}
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	var buf bytes.Buffer
	buf.Grow(len(data) / 3)
	zw.Reset(&buf)
	if _, err := zw.Write(data); err != nil {
		return fmt.Errorf("compress answer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress answer: %w", err)
	}
	c.Set(fiber.HeaderContentEncoding, "gzip")
	return c.Send(buf.Bytes())
}

// gzipWriters keeps level-9 writers between answers: each holds about a
// megabyte of tables, which allocating per answer made the garbage
// collector's busiest customer. Level 9 on purpose (BENCHMARKS.md: rural
// links, not the server's CPU, are the bottleneck).
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestCompression) // the level is valid
	return zw
}}

type principalKey struct{}

// authenticate checks the bearer token and the device behind it.
func (s *Server) authenticate(c *fiber.Ctx) error {
	h := c.Get(fiber.HeaderAuthorization)
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return fail(c, syncproto.Errorf(syncproto.CodeUnauthorized, "missing bearer token"))
	}
	claims, err := s.tokens.Verify(c.UserContext(), tok)
	if err != nil {
		return fail(c, err)
	}
	p, err := s.accounts.Authorize(c.UserContext(), claims)
	if err != nil {
		return fail(c, err)
	}
	c.Locals(principalKey{}, p)
	s.authenticated(c)
	// Every authenticated route reads its body here, whether it uses it
	// or not: one limited reader, one answer to a bomb.
	if err := reqbody.Read(c, s.bodyLimits()); err != nil {
		c.Context().SetConnectionClose()
		return fail(c, err)
	}
	return c.Next()
}

func principal(c *fiber.Ctx) auth.Principal {
	p, _ := c.Locals(principalKey{}).(auth.Principal)
	return p
}

func (s *Server) handleLogin(c *fiber.Ctx) error {
	raw, err := s.body(c)
	if err != nil {
		return fail(c, err)
	}
	var req syncproto.LoginRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return fail(c, syncproto.Errorf(syncproto.CodeMalformedBody, "login body must be JSON with email, password and device_id"))
	}
	wait, err := s.loginLimits.Wait(c.UserContext(), req.Email, c.IP())
	if err != nil {
		return err
	}
	if wait > 0 {
		return refuseLogin(c, wait)
	}
	u, err := s.accounts.CheckPassword(c.UserContext(), req.Email, req.Password)
	if err != nil {
		s.log.Info("login refused", "code", syncproto.CodeOf(err), "ip", c.IP())
		if syncproto.CodeOf(err) == syncproto.CodeBadCredentials {
			if ferr := s.loginLimits.Failed(c.UserContext(), req.Email, c.IP()); ferr != nil {
				return ferr
			}
		}
		return fail(c, err)
	}
	if err := s.accounts.EnrollDevice(c.UserContext(), u.ID, req.DeviceID, req.DeviceName); err != nil {
		return fail(c, err)
	}
	sess, err := s.refresh.Start(c.UserContext(), u, req.DeviceID)
	if err != nil {
		return err
	}
	tok, ttl, err := s.tokens.IssueSession(u.ID, req.DeviceID, u.Role, sess.Family)
	if err != nil {
		return err
	}
	s.log.Info("device logged in", "user", u.ID, "device", req.DeviceID)
	name, err := s.accounts.UserName(c.UserContext(), u.ID)
	if err != nil {
		return err
	}
	return reply(c, syncproto.TokenResponse{AccessToken: tok, ExpiresIn: int64(ttl.Seconds()), UserID: u.ID, Role: u.Role, DeviceID: req.DeviceID,
		RefreshToken: sess.RefreshToken, RefreshExpiresIn: int64(sess.RefreshExpiresIn.Seconds()), UserName: name})
}

// handleDeviceSchema serves the SQL of a device replica (Config.DeviceSchema)
// to the web SDK. It is public: it holds no personal data, and a browser
// opening the app for the first time needs it before any login. The
// document changes only with the server's version, so caches may keep
// it; its version field tells a device whether anything changed.
func (s *Server) handleDeviceSchema(c *fiber.Ctx) error {
	if len(s.cfg.DeviceSchema) == 0 {
		return fail(c, syncproto.Errorf(syncproto.CodeNotFound, "this server does not serve the device schema"))
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(s.cfg.DeviceSchema)
}
