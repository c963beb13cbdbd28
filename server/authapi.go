package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"

	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/syncproto"
)

// loginLimiters count failed logins per client address and per account,
// and answer rate_limited once either count passes its limit within the
// window. Successful logins are not counted, so a conseillère who logs in
// her three tablets is never slowed down; a password guesser is, whether
// they try many passwords on one account or one password on many.
// Counts are kept in memory: they reset when the server restarts, and
// each server process counts on its own.
func (s *Server) loginLimiters() []fiber.Handler {
	limited := func(c *fiber.Ctx) error {
		return fail(c, syncproto.Errorf(syncproto.CodeRateLimited, "too many failed logins; wait before trying again").
			With(syncproto.DetailRetryAfterSeconds, c.GetRespHeader(fiber.HeaderRetryAfter)))
	}
	byAddress := limiter.New(limiter.Config{
		Max:                    s.cfg.LoginFailuresPerAddress,
		Expiration:             s.cfg.LoginWindow,
		KeyGenerator:           func(c *fiber.Ctx) string { return "ip:" + c.IP() },
		LimitReached:           limited,
		SkipSuccessfulRequests: true,
		LimiterMiddleware:      limiter.SlidingWindow{},
	})
	byAccount := limiter.New(limiter.Config{
		Max:                    s.cfg.LoginFailuresPerAccount,
		Expiration:             s.cfg.LoginWindow,
		KeyGenerator:           s.loginAccountKey,
		LimitReached:           limited,
		SkipSuccessfulRequests: true,
		LimiterMiddleware:      limiter.SlidingWindow{},
	})
	return []fiber.Handler{byAddress, byAccount}
}

// loginAccountKey is the account a login names, normalised as the
// database compares e-mails (case-insensitively). Unknown accounts get a
// counter too, so the limit says nothing about which accounts exist.
func (s *Server) loginAccountKey(c *fiber.Ctx) string {
	raw, err := s.body(c)
	if err != nil {
		return "account:?"
	}
	var req syncproto.LoginRequest
	if json.Unmarshal(raw, &req) != nil {
		return "account:?"
	}
	return "account:" + strings.ToLower(strings.TrimSpace(req.Email))
}

// handleRefresh exchanges a refresh token for a new access token and a
// new refresh token (the old one is spent).
func (s *Server) handleRefresh(c *fiber.Ctx) error {
	raw, err := s.body(c)
	if err != nil {
		return fail(c, err)
	}
	var req syncproto.RefreshRequest
	if err := json.Unmarshal(raw, &req); err != nil || req.RefreshToken == "" {
		return fail(c, syncproto.Errorf(syncproto.CodeMalformedBody, "refresh body must be JSON with refresh_token and device_id"))
	}
	sess, err := s.refresh.Rotate(c.UserContext(), req.RefreshToken, req.DeviceID)
	if err != nil {
		s.log.Info("refresh refused", "code", syncproto.CodeOf(err), "device", req.DeviceID, "ip", c.IP())
		return fail(c, err)
	}
	tok, ttl, err := s.tokens.IssueSession(sess.UserID, sess.DeviceID, sess.Role, sess.Family)
	if err != nil {
		return err
	}
	return reply(c, syncproto.TokenResponse{AccessToken: tok, ExpiresIn: int64(ttl.Seconds()), UserID: sess.UserID, Role: sess.Role,
		DeviceID: sess.DeviceID, RefreshToken: sess.RefreshToken, RefreshExpiresIn: int64(sess.RefreshExpiresIn.Seconds())})
}

// handleRevokeDevice revokes a device: allowed to the device's owner (a
// tablet reported lost from another one), to a coordinator who currently
// coordinates the owner, and to administrators.
func (s *Server) handleRevokeDevice(c *fiber.Ctx) error {
	ctx := c.UserContext()
	p := principal(c)
	dev, err := s.accounts.DeviceByID(ctx, c.Params(syncproto.DeviceParam))
	if err != nil {
		return fail(c, err)
	}
	ok, err := s.mayRevoke(ctx, p, dev)
	if err != nil {
		return err
	}
	if !ok {
		// The answer for a device that does not exist: a refusal would
		// tell an outsider which device ids are real.
		return fail(c, syncproto.Errorf(syncproto.CodeNotFound, "no such device"))
	}
	now := s.cfg.Now()
	if err := s.accounts.RevokeDevice(ctx, dev.ID, p.UserID, now); err != nil {
		return fail(c, err)
	}
	if !dev.RevokedAt.IsZero() {
		now = dev.RevokedAt
	}
	s.log.Info("device revoked", "device", dev.ID, "by", p.UserID)
	return reply(c, syncproto.RevokeResponse{DeviceID: dev.ID, RevokedAt: now.UnixMilli()})
}

// mayRevoke asks the scope rules, as the dashboard does (one rule: see
// scope.View.MayRevoke).
func (s *Server) mayRevoke(ctx context.Context, p auth.Principal, dev auth.Device) (bool, error) {
	view, err := s.scopeRules().Load(ctx, s.db.R, who(p))
	if err != nil {
		return false, fmt.Errorf("revoke: %w", err)
	}
	return view.MayRevoke(dev.UserID, scope.Today(s.cfg.Now())), nil
}
