package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/syncproto"
)

// refuseLogin answers a login attempt over the limits of failed logins
// (auth.LoginLimits, shared with the dashboard's form): rate_limited,
// with the wait in Retry-After and in the details, in whole seconds.
func refuseLogin(c *fiber.Ctx, wait time.Duration) error {
	secs := int64(math.Ceil(wait.Seconds()))
	c.Set(fiber.HeaderRetryAfter, strconv.FormatInt(secs, 10))
	return fail(c, syncproto.Errorf(syncproto.CodeRateLimited, "too many failed logins; wait %d s before trying again", secs).
		With(syncproto.DetailRetryAfterSeconds, secs))
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
