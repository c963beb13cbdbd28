package scope_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/relais-numerique/relais/demo"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// BenchmarkFirstPull measures a device's first full pull, page by page
// over loopback HTTP, from a server holding the demo département (about
// 50,000 activities), for each role: what scoping costs on the path every
// page takes. Run it with
//
//	go test -run XXX -bench FirstPull -benchtime 3x ./server/scope/
func BenchmarkFirstPull(b *testing.B) {
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "data")
	sum, err := demo.GenerateDir(ctx, dir, demo.Options{Seed: 1, Accounts: true})
	if err != nil {
		b.Fatal(err)
	}
	srv := relaistest.StartServer(b, server.Config{DataDir: dir})
	byRole := map[string]demo.Account{}
	for _, a := range sum.Accounts {
		if _, seen := byRole[a.Role]; !seen {
			byRole[a.Role] = a
		}
	}
	for _, role := range []string{"conseiller", "coordinateur", "admin"} {
		acc, ok := byRole[role]
		if !ok {
			b.Fatalf("the demo has no %s account", role)
		}
		tok := srv.LoginHTTP(b, acc.Email, demo.DefaultPassword, id()).AccessToken
		b.Run(role, func(b *testing.B) {
			var cells, pages int
			for b.Loop() {
				cells, pages = 0, 0
				cursor := int64(0)
				for more := true; more; {
					status, raw := srv.PostJSON(b, "/v1/sync", tok, map[string]any{"cursor": cursor, "limit": syncproto.DefaultPageLimit})
					if status != 200 {
						b.Fatalf("pull: %d %s", status, raw)
					}
					resp, err := syncproto.DecodeResponse(raw)
					if err != nil {
						b.Fatal(err)
					}
					cells += len(resp.Changes)
					pages++
					cursor, more = resp.Cursor, resp.More
				}
			}
			b.ReportMetric(float64(cells), "cells")
			b.ReportMetric(float64(pages), "exchanges")
		})
	}
}
