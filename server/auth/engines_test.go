package auth_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// addDevice enrols a device row directly: EnrollDevice also checks the
// merge's tables for the id, and those are not on PostgreSQL yet.
func addDevice(t *testing.T, db *store.DB, userID string) string {
	t.Helper()
	id := newDeviceID()
	if _, err := db.W.Exec("INSERT INTO _devices (id, user_id, created_at) VALUES (?, ?, ?)", id, userID, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	return id
}

func codeOf(err error) syncproto.Code {
	var pe *syncproto.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestAccountsOnEveryEngine: accounts behave the same on both stores:
// e-mail addresses equal whatever their case, passwords, disabling, names.
func TestAccountsOnEveryEngine(t *testing.T) {
	ctx := context.Background()
	for _, e := range relaistest.Engines() {
		t.Run(e.Name, func(t *testing.T) {
			db := e.Open(t, e.New(t))
			a := &auth.Accounts{W: db.W, R: db.R}
			u, err := a.AddUser(ctx, "Camille.Martin@exemple.fr", auth.RoleConseiller, pw)
			must(t, err)
			if _, err := a.AddUser(ctx, "camille.martin@EXEMPLE.fr", auth.RoleAdmin, pw); err == nil || !strings.Contains(err.Error(), "already exists") {
				t.Fatalf("the same address in another case: %v", err)
			}
			got, err := a.UserByEmail(ctx, "  CAMILLE.MARTIN@exemple.fr ")
			if err != nil || got.ID != u.ID {
				t.Fatalf("lookup by address in another case: %+v %v", got, err)
			}
			if _, err := a.CheckPassword(ctx, "camille.martin@exemple.fr", pw); err != nil {
				t.Fatalf("right password: %v", err)
			}
			if _, err := a.CheckPassword(ctx, "camille.martin@exemple.fr", "pas-le-bon-mot"); codeOf(err) != syncproto.CodeBadCredentials {
				t.Fatalf("wrong password: %v", err)
			}
			if _, err := a.CheckPassword(ctx, "personne@exemple.fr", pw); codeOf(err) != syncproto.CodeBadCredentials {
				t.Fatalf("unknown address: %v", err)
			}
			must(t, a.SetName(ctx, "camille.martin@exemple.fr", "Camille Martin"))
			names, err := a.UserNames(ctx)
			if err != nil || names[u.ID] != "Camille Martin" {
				t.Fatalf("names %v %v", names, err)
			}
			if _, err := a.SetDisabled(ctx, "camille.martin@exemple.fr", true, time.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := a.CheckPassword(ctx, "camille.martin@exemple.fr", pw); codeOf(err) != syncproto.CodeUserDisabled {
				t.Fatalf("disabled account: %v", err)
			}
			list, err := a.ListUsers(ctx)
			if err != nil || len(list) != 1 || !list[0].Disabled || list[0].Name != "Camille Martin" {
				t.Fatalf("list %+v %v", list, err)
			}
		})
	}
}

// TestLoginLimitsSharedByServers: failures counted by one server count
// on the other (the limit lives in the database, not in a process).
func TestLoginLimitsSharedByServers(t *testing.T) {
	ctx := context.Background()
	now := time.UnixMilli(time.Now().UnixMilli()) // stored in milliseconds
	clock := func() time.Time { return now }
	for _, e := range relaistest.Engines() {
		t.Run(e.Name, func(t *testing.T) {
			addr := e.New(t)
			one, two := e.Open(t, addr), e.Open(t, addr)
			limits := func(db *store.DB) *auth.LoginLimits {
				return &auth.LoginLimits{W: db.W, R: db.R, PerAccount: 3, PerAddress: 10, Window: 10 * time.Minute, Now: clock}
			}
			a, b := limits(one), limits(two)
			for i := range 3 {
				wait, err := b.Wait(ctx, "Camille@exemple.fr", "192.0.2.1")
				if err != nil || wait != 0 {
					t.Fatalf("before failure %d: wait %v, %v", i+1, wait, err)
				}
				// Alternate servers, as a load balancer would.
				must(t, []*auth.LoginLimits{a, b}[i%2].Failed(ctx, "camille@exemple.fr", "192.0.2.1"))
			}
			for _, l := range []*auth.LoginLimits{a, b} {
				wait, err := l.Wait(ctx, "CAMILLE@exemple.fr", "192.0.2.9")
				if err != nil || wait != 10*time.Minute {
					t.Fatalf("after 3 failures: wait %v, %v", wait, err)
				}
			}
			now = now.Add(10*time.Minute + time.Millisecond)
			if wait, err := a.Wait(ctx, "camille@exemple.fr", "192.0.2.1"); err != nil || wait != 0 {
				t.Fatalf("once the window passed: wait %v, %v", wait, err)
			}
		})
	}
}

// TestRefreshAcrossServers: a session started on one server rotates on
// the other; the one retry after a lost answer is allowed wherever it
// lands; a reuse ends the family everywhere; revocation on one server is
// seen by the other at once.
func TestRefreshAcrossServers(t *testing.T) {
	ctx := context.Background()
	for _, e := range relaistest.Engines() {
		t.Run(e.Name, func(t *testing.T) {
			addr := e.New(t)
			one, two := e.Open(t, addr), e.Open(t, addr)
			a := &auth.Accounts{W: one.W, R: one.R}
			u, err := a.AddUser(ctx, "dominique@exemple.fr", auth.RoleConseiller, pw)
			must(t, err)
			dev := addDevice(t, one, u.ID)
			r1 := &auth.Refresh{W: one.W, R: one.R, Idle: time.Hour, Absolute: 24 * time.Hour, Grace: time.Minute}
			r2 := &auth.Refresh{W: two.W, R: two.R, Idle: time.Hour, Absolute: 24 * time.Hour, Grace: time.Minute}

			s0, err := r1.Start(ctx, u, dev)
			must(t, err)
			s1, err := r2.Rotate(ctx, s0.RefreshToken, dev)
			must(t, err)
			// The answer was lost: the device presents s0 again, on server one.
			s1b, err := r1.Rotate(ctx, s0.RefreshToken, dev)
			must(t, err)
			if _, err := r2.Rotate(ctx, s1.RefreshToken, dev); err == nil {
				t.Fatal("the successor replaced by the retry still rotates")
			}
			s2, err := r2.Rotate(ctx, s1b.RefreshToken, dev)
			must(t, err)
			// s1b again, beyond the one retry: the family ends.
			if _, err := r1.Rotate(ctx, s0.RefreshToken, dev); err == nil {
				t.Fatal("a second retry was accepted")
			}
			if _, err := r1.Rotate(ctx, s2.RefreshToken, dev); err == nil {
				t.Fatal("the family survived a reuse")
			}
			ended, err := auth.SessionEnded(ctx, two.R, s2.Family)
			if err != nil || !ended {
				t.Fatalf("session ended: %v %v", ended, err)
			}

			s3, err := r2.Start(ctx, u, dev)
			must(t, err)
			must(t, a.RevokeDevice(ctx, dev, "admin", time.Now()))
			if _, err := r2.Rotate(ctx, s3.RefreshToken, dev); codeOf(err) != syncproto.CodeDeviceRevoked {
				t.Fatalf("rotation on the other server after revocation: %v", err)
			}
		})
	}
}

// TestConcurrentRotationLeavesOneLiveToken: two servers rotating the same
// refresh token at the same moment (a device that retried on the other
// server before the first answer came back) must not both hand out a
// live successor. With one SQLite writer they cannot interleave; on
// PostgreSQL both transactions read the token unused, and only the
// conditional update (claim) makes the second one see the first.
func TestConcurrentRotationLeavesOneLiveToken(t *testing.T) {
	ctx := context.Background()
	for _, e := range relaistest.Engines() {
		t.Run(e.Name, func(t *testing.T) {
			addr := e.New(t)
			one, two := e.Open(t, addr), e.Open(t, addr)
			a := &auth.Accounts{W: one.W, R: one.R}
			u, err := a.AddUser(ctx, "sacha@exemple.fr", auth.RoleConseiller, pw)
			must(t, err)
			dev := addDevice(t, one, u.ID)
			servers := []*auth.Refresh{
				{W: one.W, R: one.R, Idle: time.Hour, Absolute: 24 * time.Hour, Grace: time.Minute},
				{W: two.W, R: two.R, Idle: time.Hour, Absolute: 24 * time.Hour, Grace: time.Minute},
			}
			for round := range 20 {
				s, err := servers[0].Start(ctx, u, dev)
				must(t, err)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for _, r := range servers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						_, _ = r.Rotate(ctx, s.RefreshToken, dev)
					}()
				}
				close(start)
				wg.Wait()
				var live int
				err = one.R.QueryRow(`SELECT COUNT(*) FROM _refresh_tokens t JOIN _refresh_families f ON f.id = t.family
					WHERE f.id = ? AND f.revoked_at IS NULL AND t.used_at IS NULL AND t.revoked_at IS NULL`, s.Family).Scan(&live)
				must(t, err)
				if live > 1 {
					t.Fatalf("round %d: %d live refresh tokens in one family after two concurrent rotations", round, live)
				}
			}
		})
	}
}

// TestSigningKeysSharedByServers: a token signed by one server verifies
// on the other, also after a key rotation made on one of them.
func TestSigningKeysSharedByServers(t *testing.T) {
	ctx := context.Background()
	for _, e := range relaistest.Engines() {
		t.Run(e.Name, func(t *testing.T) {
			addr := e.New(t)
			one, two := e.Open(t, addr), e.Open(t, addr)
			k1, err := auth.LoadKeys(ctx, one.W)
			must(t, err)
			k2, err := auth.LoadKeys(ctx, two.W)
			must(t, err)
			t1 := &auth.Tokens{Keys: k1, Issuer: "relais", Audience: "relais-sync", TTL: time.Minute}
			t2 := &auth.Tokens{Keys: k2, Issuer: "relais", Audience: "relais-sync", TTL: time.Minute}
			for i := range 2 {
				tok, _, err := t1.Issue("u", "d", auth.RoleConseiller)
				must(t, err)
				if _, err := t2.Verify(ctx, tok); err != nil {
					t.Fatalf("step %d: a token from server one does not verify on server two: %v", i, err)
				}
				tok, _, err = t2.Issue("u", "d", auth.RoleConseiller)
				must(t, err)
				if _, err := t1.Verify(ctx, tok); err != nil {
					t.Fatalf("step %d: a token from server two does not verify on server one: %v", i, err)
				}
				_, err = k2.Rotate(ctx)
				must(t, err)
			}
		})
	}
}
