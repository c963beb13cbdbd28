package server

import (
	"context"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/server/pwa"
	"github.com/relais-numerique/relais/server/reqbody"
	"github.com/relais-numerique/relais/server/web"
)

// dashboardRoutes mounts the coordinators' web dashboard (package web)
// on app: French pages under "/" and their JSON API under /v1/dashboard.
func (s *Server) dashboardRoutes(app *fiber.App) {
	h, err := web.New(web.Deps{
		DB:         s.db,
		Accounts:   s.accounts,
		Schema:     s.Schema,
		WriteRowAs: s.WriteRowAs,
		Bearer: func(ctx context.Context, token string) (auth.Principal, error) {
			claims, err := s.tokens.Verify(ctx, token)
			if err != nil {
				return auth.Principal{}, err
			}
			return s.accounts.Authorize(ctx, claims)
		},
		// The same revocation as POST /v1/devices/{id}/revoke: the device
		// and its refresh tokens end in one transaction.
		RevokeDevice: func(ctx context.Context, actorID, deviceID string) error {
			return s.accounts.RevokeDevice(ctx, deviceID, actorID, s.cfg.Now())
		},
		TrustedProxies: s.cfg.TrustedProxies,
		ServerNode:     s.node,
		LoginLimits:    s.loginLimits,
		Body:           s.bodyLimits(),
		Authenticated:  s.authenticated,
		PreAuthBody:    reqbody.Limits{Max: PreAuthBodyLimit, Ratio: s.cfg.DecompressRatio},
		Now:            s.cfg.Now,
		Log:            s.log,
	})
	if err != nil {
		// The templates are embedded: a failure here is a bug caught by
		// every test that starts a server.
		panic(fmt.Sprintf("dashboard: %v", err))
	}
	h.Mount(app)
	s.pageNotFound = h.NotFoundPage
}

// appRoutes serves the conseillère's offline app (package pwa) at
// /app/; it syncs through the same API as any device.
func (s *Server) appRoutes(app *fiber.App) {
	h, err := pwa.New(nil)
	if err != nil {
		// The app is embedded: a failure here is a bug caught by every
		// test that starts a server.
		panic(fmt.Sprintf("app: %v", err))
	}
	h.Mount(app)
}
