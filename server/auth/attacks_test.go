package auth_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/syncproto"
)

const pw = "un-mot-de-passe-solide"

// fakeClock is the server's wall clock in tests that move time: tokens
// expire by it, without any test waiting.
type fakeClock struct{ ms atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ms.Store(time.Now().UnixMilli())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }
func newDeviceID() string                    { return uuid.Must(uuid.NewV7()).String() }
func b64(v []byte) string                    { return base64.RawURLEncoding.EncodeToString(v) }
func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	must(t, err)
	return b
}
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
func sessionCount(t *testing.T, s *relaistest.Server) int {
	return countRows(t, s, "SELECT COUNT(*) FROM _refresh_families WHERE revoked_at IS NULL")
}

func countRows(t *testing.T, s *relaistest.Server, q string, args ...any) int {
	t.Helper()
	var n int
	must(t, s.DB().R.QueryRow(q, args...).Scan(&n))
	return n
}

// pushOne is a sync request pushing one cell of a new activity owned by
// owner, signed by node: what an attacker would like stored.
func pushOne(owner, node string) map[string]any {
	hlc := syncproto.FromTime(time.Now())
	return map[string]any{
		"push": map[string]any{"id": newDeviceID(), "changes": []map[string]any{{
			"tbl": "activite", "pk": newDeviceID(), "col": "mediateur_id", "val": owner, "ver": []any{hlc, node},
		}}},
		"cursor": 0, "clock": hlc,
	}
}

// storedState is what an attack must leave unchanged.
func storedState(t *testing.T, s *relaistest.Server) [2]int {
	return [2]int{countRows(t, s, "SELECT COUNT(*) FROM _rows"), countRows(t, s, "SELECT COUNT(*) FROM _batches")}
}

func signingKey(t *testing.T, s *relaistest.Server) (string, ed25519.PrivateKey) {
	t.Helper()
	var kid string
	var seed []byte
	must(t, s.DB().R.QueryRow("SELECT kid, private_key FROM _signing_keys WHERE retired_at IS NULL").Scan(&kid, &seed))
	return kid, ed25519.NewKeyFromSeed(seed)
}

func sign(t *testing.T, method jwt.SigningMethod, kid string, key any, c auth.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	must(t, err)
	return s
}

// TestTokenAttacks sends forged and altered access tokens, each with a
// push, to the real server: every one is refused with its code and
// nothing is stored. The first case, the genuine token, shows the
// request itself would have been accepted.
func TestTokenAttacks(t *testing.T) {
	t.Parallel()
	srv := relaistest.StartServer(t, server.Config{})
	u := srv.AddUser(t, "camille@exemple.fr", auth.RoleConseiller, pw)
	other := srv.AddUser(t, "dominique@exemple.fr", auth.RoleAdmin, pw)
	dev := newDeviceID()
	good := srv.LoginHTTP(t, u.Email, pw, dev).AccessToken
	kid, key := signingKey(t, srv)
	pub := key.Public().(ed25519.PublicKey)
	now := time.Now()
	claims := func(edit func(c *auth.Claims)) auth.Claims {
		c := auth.Claims{RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "relais", Audience: jwt.ClaimStrings{"relais-sync"}, Subject: u.ID,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)), ID: newDeviceID(),
		}, Device: dev, Role: auth.RoleConseiller}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	_, strangerKey, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	tampered := func(edit func(m map[string]any)) string {
		parts := strings.Split(good, ".")
		var m map[string]any
		must(t, json.Unmarshal(unb64(t, parts[1]), &m))
		edit(m)
		payload, err := json.Marshal(m)
		must(t, err)
		return parts[0] + "." + b64(payload) + "." + parts[2]
	}

	cases := []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"genuine token (control)", good, http.StatusOK, ""},
		{"alg none", sign(t, jwt.SigningMethodNone, kid, jwt.UnsafeAllowNoneSignatureType, claims(nil)), 401, "unauthorized"},
		{"HS256 signed with the public key", sign(t, jwt.SigningMethodHS256, kid, []byte(pub), claims(nil)), 401, "unauthorized"},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, newDeviceID(), strangerKey, claims(nil)), 401, "unauthorized"},
		{"known kid, foreign key", sign(t, jwt.SigningMethodEdDSA, kid, strangerKey, claims(nil)), 401, "unauthorized"},
		{"no kid", sign(t, jwt.SigningMethodEdDSA, "", key, claims(nil)), 401, "unauthorized"},
		{"expired", sign(t, jwt.SigningMethodEdDSA, kid, key, claims(func(c *auth.Claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-2 * time.Hour))
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
		})), 401, "token_expired"},
		{"no expiry", sign(t, jwt.SigningMethodEdDSA, kid, key, claims(func(c *auth.Claims) { c.ExpiresAt = nil })), 401, "unauthorized"},
		{"wrong issuer", sign(t, jwt.SigningMethodEdDSA, kid, key, claims(func(c *auth.Claims) { c.Issuer = "evil" })), 401, "unauthorized"},
		{"wrong audience", sign(t, jwt.SigningMethodEdDSA, kid, key, claims(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other-service"} })), 401, "unauthorized"},
		{"tampered payload: role", tampered(func(m map[string]any) { m["role"] = auth.RoleAdmin }), 401, "unauthorized"},
		{"tampered payload: user", tampered(func(m map[string]any) { m["sub"] = other.ID }), 401, "unauthorized"},
		{"tampered payload: expiry", tampered(func(m map[string]any) { m["exp"] = now.Add(24 * time.Hour).Unix() }), 401, "unauthorized"},
		{"not a JWT", "abc.def.ghi", 401, "unauthorized"},
		{"refresh token used as access token", srv.LoginHTTP(t, u.Email, pw, newDeviceID()).RefreshToken, 401, "unauthorized"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := storedState(t, srv)
			status, raw := srv.PostJSON(t, "/v1/sync", tc.token, pushOne(u.ID, dev))
			if status != tc.status || relaistest.ErrorCode(raw) != tc.code {
				t.Fatalf("got %d %s, want %d %q", status, raw, tc.status, tc.code)
			}
			if tc.code != "" && storedState(t, srv) != before {
				t.Fatal("a refused request stored something")
			}
		})
	}
}

// TestEnrolmentRefusesTakenNodeIDs: a device cannot enrol under the
// server's own node id (shown in every pull), under a node id already
// seen in versions, nor under another spelling of one; a device id
// another account holds gets the same answer, which says nothing about
// whether it exists (issue 11, failure 6).
func TestEnrolmentRefusesTakenNodeIDs(t *testing.T) {
	t.Parallel()
	srv := relaistest.StartServer(t, server.Config{})
	u := srv.AddUser(t, "camille@exemple.fr", auth.RoleConseiller, pw)
	other := srv.AddUser(t, "dominique@exemple.fr", auth.RoleConseiller, pw)
	var serverNode string
	must(t, srv.DB().R.QueryRow("SELECT node FROM _replica").Scan(&serverNode))
	// A node that wrote versions but is no enrolled device (an import, a
	// device whose record is gone).
	ghost := newDeviceID()
	// The node dictionary names every node a version held came from.
	_, err := srv.DB().W.Exec("INSERT INTO _nodes (node) VALUES (?)", ghost)
	must(t, err)
	taken := newDeviceID()
	srv.LoginHTTP(t, other.Email, pw, taken)

	login := func(dev string) (int, []byte) {
		return srv.PostJSON(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": pw, "device_id": dev})
	}
	var answers []string
	for _, tc := range []struct {
		name, dev string
		status    int
	}{
		{"the server's node id", serverNode, 403},
		{"a node seen in versions", ghost, 403},
		{"a device of another account", taken, 403},
		{"the server's node id in capitals", strings.ToUpper(serverNode), 400},
		{"the server's node id in braces", "{" + serverNode + "}", 400},
	} {
		status, raw := login(tc.dev)
		if status != tc.status {
			t.Errorf("%s: got %d %s, want %d", tc.name, status, raw, tc.status)
		}
		if status == 403 {
			answers = append(answers, string(raw))
		}
	}
	for _, a := range answers[1:] {
		if a != answers[0] {
			t.Errorf("refusals differ, which tells taken ids apart: %s vs %s", a, answers[0])
		}
	}
	if n := countRows(t, srv, "SELECT COUNT(*) FROM _devices WHERE lower(id) IN (lower(?), lower(?))", serverNode, ghost); n != 0 {
		t.Fatalf("%d devices enrolled under taken node ids", n)
	}
	if status, raw := login(newDeviceID()); status != 200 {
		t.Fatalf("a fresh device id: %d %s", status, raw)
	}
}

// TestRevocationAndDisabling: a revoked device's access and refresh
// tokens are refused at once, with the order to wipe; revocation is
// allowed to the owner, their coordinator and admins only; a disabled
// user's devices are refused everywhere.
func TestRevocationAndDisabling(t *testing.T) {
	t.Parallel()
	// One suite, two stores: a revocation holds on PostgreSQL as on SQLite.
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		camille := srv.AddUser(t, "camille@exemple.fr", auth.RoleConseiller, pw)
		srv.AddUser(t, "stranger@exemple.fr", auth.RoleConseiller, pw)
		srv.AddUser(t, "coord@exemple.fr", auth.RoleCoordinateur, pw)
		srv.AddUser(t, "other-coord@exemple.fr", auth.RoleCoordinateur, pw)
		coord, err := (&auth.Accounts{W: srv.DB().W, R: srv.DB().R}).UserByEmail(ctx, "coord@exemple.fr")
		must(t, err)
		must(t, srv.WriteRow(ctx, "coordination", newDeviceID(), map[string]any{"coordinateur_id": coord.ID, "mediateur_id": camille.ID}))

		lost, spare, third := newDeviceID(), newDeviceID(), newDeviceID()
		lostTok := srv.LoginHTTP(t, camille.Email, pw, lost)
		spareTok := srv.LoginHTTP(t, camille.Email, pw, spare)
		srv.LoginHTTP(t, camille.Email, pw, third)
		strangerTok := srv.LoginHTTP(t, "stranger@exemple.fr", pw, newDeviceID())
		otherCoordTok := srv.LoginHTTP(t, "other-coord@exemple.fr", pw, newDeviceID())
		coordTok := srv.LoginHTTP(t, "coord@exemple.fr", pw, newDeviceID())

		revoke := func(token, id string) (int, string) {
			status, raw := srv.PostJSON(t, "/v1/devices/"+id+"/revoke", token, map[string]any{})
			return status, relaistest.ErrorCode(raw)
		}
		for _, tc := range []struct {
			name, token, device string
			status              int
			code                string
		}{
			// A device out of reach gets the answer of one that does not exist
			// (issue 11: 403 against 404 told which ids exist).
			{"another conseiller", strangerTok.AccessToken, lost, 404, "not_found"},
			{"a coordinator who does not coordinate the owner", otherCoordTok.AccessToken, lost, 404, "not_found"},
			{"unknown device", spareTok.AccessToken, newDeviceID(), 404, "not_found"},
			{"the owner, from another device", spareTok.AccessToken, lost, 200, ""},
			{"the owner's coordinator", coordTok.AccessToken, third, 200, ""},
		} {
			if status, code := revoke(tc.token, tc.device); status != tc.status || code != tc.code {
				t.Errorf("%s: got %d %q, want %d %q", tc.name, status, code, tc.status, tc.code)
			}
		}

		before := storedState(t, srv)
		status, raw := srv.PostJSON(t, "/v1/sync", lostTok.AccessToken, pushOne(camille.ID, lost))
		if status != 403 || relaistest.ErrorCode(raw) != "device_revoked" || !bytes.Contains(raw, []byte(`"wipe":true`)) {
			t.Fatalf("revoked device's access token: got %d %s", status, raw)
		}
		if storedState(t, srv) != before {
			t.Fatal("a revoked device's push stored something")
		}
		status, raw = srv.PostJSON(t, "/v1/auth/refresh", "", map[string]string{"refresh_token": lostTok.RefreshToken, "device_id": lost})
		if status != 403 || relaistest.ErrorCode(raw) != "device_revoked" {
			t.Fatalf("revoked device's refresh token: got %d %s", status, raw)
		}
		status, raw = srv.PostJSON(t, "/v1/auth/login", "", map[string]string{"email": camille.Email, "password": pw, "device_id": lost})
		if status != 403 || relaistest.ErrorCode(raw) != "device_revoked" {
			t.Fatalf("revoked device logging in again: got %d %s", status, raw)
		}
		// The owner's other device still works.
		if status, raw := srv.PostJSON(t, "/v1/sync", spareTok.AccessToken, pushOne(camille.ID, spare)); status != 200 {
			t.Fatalf("the owner's other device: %d %s", status, raw)
		}

		// Disabling the account stops every one of its devices.
		_, err = (&auth.Accounts{W: srv.DB().W, R: srv.DB().R}).SetDisabled(ctx, camille.Email, true, time.Now())
		must(t, err)
		before = storedState(t, srv)
		for _, tc := range []struct {
			name, path, token string
			body              any
		}{
			{"sync", "/v1/sync", spareTok.AccessToken, pushOne(camille.ID, spare)},
			{"refresh", "/v1/auth/refresh", "", map[string]string{"refresh_token": spareTok.RefreshToken}},
			{"login", "/v1/auth/login", "", map[string]string{"email": camille.Email, "password": pw, "device_id": spare}},
		} {
			status, raw := srv.PostJSON(t, tc.path, tc.token, tc.body)
			if status != 403 || relaistest.ErrorCode(raw) != "user_disabled" {
				t.Errorf("disabled user, %s: got %d %s", tc.name, status, raw)
			}
		}
		if storedState(t, srv) != before {
			t.Fatal("a disabled user's push stored something")
		}
	})
}

// TestRefreshRotation: every refresh spends its token; a retry after a
// lost answer succeeds once within the grace window; any other reuse ends
// the family, and its access tokens with it; idle and absolute limits
// hold.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	srv := relaistest.StartServer(t, server.Config{Now: clk.Now, RefreshGrace: time.Minute,
		RefreshIdle: 60 * 24 * time.Hour, RefreshAbsolute: 365 * 24 * time.Hour})
	u := srv.AddUser(t, "camille@exemple.fr", auth.RoleConseiller, pw)
	refresh := func(tok string) (int, string, syncproto.TokenResponse) {
		t.Helper()
		status, raw := srv.PostJSON(t, "/v1/auth/refresh", "", map[string]string{"refresh_token": tok})
		var ans syncproto.TokenResponse
		if status == 200 {
			must(t, json.Unmarshal(raw, &ans))
		}
		return status, relaistest.ErrorCode(raw), ans
	}
	works := func(access string) bool {
		status, _ := srv.PostJSON(t, "/v1/sync", access, map[string]any{"cursor": 0})
		return status == 200
	}
	ok := func(tok string) syncproto.TokenResponse {
		t.Helper()
		status, code, ans := refresh(tok)
		if status != 200 || ans.RefreshToken == "" || ans.RefreshToken == tok || !works(ans.AccessToken) {
			t.Fatalf("refresh refused: %d %s", status, code)
		}
		return ans
	}
	refused := func(what, tok string) {
		t.Helper()
		if status, code, _ := refresh(tok); status != 401 || code != "unauthorized" {
			t.Fatalf("%s: got %d %q, want 401 unauthorized", what, status, code)
		}
	}

	t.Run("lost answer: one retry within grace", func(t *testing.T) {
		dev := newDeviceID()
		rt0 := srv.LoginHTTP(t, u.Email, pw, dev).RefreshToken
		ok(rt0) // answer lost on the way back
		clk.Advance(20 * time.Second)
		rt1 := ok(rt0)               // the retry succeeds...
		refused("second retry", rt0) // ...once
		refused("token of the ended family", rt1.RefreshToken)
		if works(rt1.AccessToken) {
			t.Fatal("an access token of the ended family still works")
		}
	})
	t.Run("reuse of a rotated token ends the family", func(t *testing.T) {
		dev := newDeviceID()
		rt0 := srv.LoginHTTP(t, u.Email, pw, dev).RefreshToken
		rt1 := ok(rt0)
		rt2 := ok(rt1.RefreshToken) // the successor was used: the answer did arrive
		refused("stolen rt0 replayed", rt0)
		refused("the device's live token, after the family ended", rt2.RefreshToken)
		if works(rt2.AccessToken) {
			t.Fatal("an access token of the ended family still works")
		}
	})
	// Found by attacking the server: the retry replaced rt0's first successor, which
	// must then be dead; before the fix it still refreshed and two chains
	// lived on.
	t.Run("the successor a retry replaced stays dead", func(t *testing.T) {
		dev := newDeviceID()
		rt0 := srv.LoginHTTP(t, u.Email, pw, dev).RefreshToken
		first := ok(rt0)
		clk.Advance(10 * time.Second)
		second := ok(rt0) // within the grace: taken as a lost answer
		refused("the replaced successor", first.RefreshToken)
		third := ok(second.RefreshToken) // the retry's chain lives on, alone
		refused("the replaced successor, later", first.RefreshToken)
		ok(third.RefreshToken)
	})
	t.Run("two simultaneous refreshes leave one chain", func(t *testing.T) {
		dev := newDeviceID()
		rt0 := srv.LoginHTTP(t, u.Email, pw, dev).RefreshToken
		var wg sync.WaitGroup
		answers := make([]syncproto.TokenResponse, 2)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, answers[i] = refresh(rt0)
			}()
		}
		wg.Wait()
		live := 0
		for _, a := range answers {
			if a.RefreshToken == "" {
				continue
			}
			if status, _, _ := refresh(a.RefreshToken); status == 200 {
				live++
			}
		}
		if live != 1 {
			t.Fatalf("%d chains refresh after two simultaneous refreshes of one token, want exactly 1", live)
		}
	})
	// Garbage refresh tokens are refused without the single writer: while
	// a transaction holds it, they are still answered (before the fix,
	// each waited for the writer, and 4,000 of them took 13 s of it).
	t.Run("unknown or malformed tokens do not wait for the writer", func(t *testing.T) {
		tx, err := srv.DB().W.BeginTx(context.Background(), nil)
		must(t, err)
		defer tx.Rollback()
		done := make(chan string, 1)
		go func() {
			for _, bad := range []string{"rt1_", "rt1_" + strings.Repeat("A", 42), "rt1_" + strings.Repeat("A", 44),
				"rt1_" + strings.Repeat("*", 43), "rt0_" + strings.Repeat("A", 43), "rt1_" + strings.Repeat("A", 43)} {
				if status, code, _ := refresh(bad); status != 401 || code != "unauthorized" {
					done <- fmt.Sprintf("%q: %d %s", bad, status, code)
					return
				}
			}
			done <- ""
		}()
		select {
		case msg := <-done:
			if msg != "" {
				t.Fatalf("garbage refresh token not refused: %s", msg)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("garbage refresh tokens waited for the writer held by another transaction")
		}
	})
	t.Run("retry after the grace window is reuse", func(t *testing.T) {
		rt0 := srv.LoginHTTP(t, u.Email, pw, newDeviceID()).RefreshToken
		rt1 := ok(rt0)
		clk.Advance(2 * time.Minute)
		refused("late retry", rt0)
		refused("successor", rt1.RefreshToken)
	})
	t.Run("idle limit", func(t *testing.T) {
		rt := srv.LoginHTTP(t, u.Email, pw, newDeviceID()).RefreshToken
		clk.Advance(59 * 24 * time.Hour)
		rt = ok(rt).RefreshToken // 59 days offline: still fine
		clk.Advance(61 * 24 * time.Hour)
		refused("61 days unused", rt)
	})
	t.Run("absolute limit", func(t *testing.T) {
		rt := srv.LoginHTTP(t, u.Email, pw, newDeviceID()).RefreshToken
		for range 12 {
			clk.Advance(30 * 24 * time.Hour)
			rt = ok(rt).RefreshToken
		}
		clk.Advance(10 * 24 * time.Hour) // 370 days after the login
		refused("past the absolute limit", rt)
	})
	t.Run("bound to its device", func(t *testing.T) {
		rt := srv.LoginHTTP(t, u.Email, pw, newDeviceID()).RefreshToken
		status, raw := srv.PostJSON(t, "/v1/auth/refresh", "", map[string]string{"refresh_token": rt, "device_id": newDeviceID()})
		if status != 401 || relaistest.ErrorCode(raw) != "unauthorized" {
			t.Fatalf("refresh from another device: %d %s", status, raw)
		}
	})
	t.Run("new login ends the device's earlier session", func(t *testing.T) {
		dev := newDeviceID()
		first := srv.LoginHTTP(t, u.Email, pw, dev)
		srv.LoginHTTP(t, u.Email, pw, dev)
		refused("first login's refresh token", first.RefreshToken)
	})
	t.Run("tokens are stored hashed", func(t *testing.T) {
		rt := srv.LoginHTTP(t, u.Email, pw, newDeviceID()).RefreshToken
		if n := countRows(t, srv, "SELECT COUNT(*) FROM _refresh_tokens WHERE hash = ? OR CAST(hash AS TEXT) = ?", rt, rt); n != 0 {
			t.Fatal("a refresh token is stored as is")
		}
	})
}

// TestKeyRotation: after a rotation, tokens signed by the old key verify
// until they expire, new tokens are signed by the new key, and the old
// key stops verifying once its tokens' life is over.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	srv := relaistest.StartServer(t, server.Config{Now: clk.Now, AccessTTL: 15 * time.Minute})
	u := srv.AddUser(t, "camille@exemple.fr", auth.RoleConseiller, pw)
	dev := newDeviceID()
	old := srv.LoginHTTP(t, u.Email, pw, dev)
	oldKid, _ := signingKey(t, srv)
	keys, err := auth.LoadKeys(context.Background(), srv.DB().W) // as `relais admin keys rotate` does, beside the server
	must(t, err)
	_, err = keys.Rotate(context.Background())
	must(t, err)
	if status, raw := srv.PostJSON(t, "/v1/sync", old.AccessToken, map[string]any{"cursor": 0}); status != 200 {
		t.Fatalf("old key's token refused right after rotation: %d %s", status, raw)
	}
	status, raw := srv.PostJSON(t, "/v1/auth/refresh", "", map[string]string{"refresh_token": old.RefreshToken})
	if status != 200 {
		t.Fatalf("refresh after rotation: %d %s", status, raw)
	}
	var fresh syncproto.TokenResponse
	must(t, json.Unmarshal(raw, &fresh))
	var hdr struct{ Kid string }
	must(t, json.Unmarshal(unb64(t, strings.Split(fresh.AccessToken, ".")[0]), &hdr))
	if hdr.Kid == oldKid {
		t.Fatal("new tokens are still signed by the retired key")
	}
	// An old-key token whose exp lies beyond the key's grace (forged
	// with the leaked old key) stops verifying once the grace is over.
	var seed []byte
	must(t, srv.DB().R.QueryRow("SELECT private_key FROM _signing_keys WHERE kid = ?", oldKid).Scan(&seed))
	forged := sign(t, jwt.SigningMethodEdDSA, oldKid, ed25519.NewKeyFromSeed(seed), auth.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: "relais", Audience: jwt.ClaimStrings{"relais-sync"}, Subject: u.ID, ID: newDeviceID(),
		IssuedAt: jwt.NewNumericDate(clk.Now()), ExpiresAt: jwt.NewNumericDate(clk.Now().Add(24 * time.Hour)),
	}, Device: dev, Role: auth.RoleConseiller})
	clk.Advance(20 * time.Minute)
	if status, raw := srv.PostJSON(t, "/v1/sync", forged, map[string]any{"cursor": 0}); status != 401 {
		t.Fatalf("retired key still verifies after its grace: %d %s", status, raw)
	}
	if status, raw := srv.PostJSON(t, "/v1/sync", fresh.AccessToken, map[string]any{"cursor": 0}); status != 401 || relaistest.ErrorCode(raw) != "token_expired" {
		t.Fatalf("a 15-minute token 20 minutes later: %d %s", status, raw)
	}
}

// TestLoginRateLimits: failed logins are counted per account and per
// address; past the limit even the right password is answered
// rate_limited; the answers for a known and an unknown account are the
// same bytes.
func TestLoginRateLimits(t *testing.T) {
	t.Parallel()
	srv := relaistest.StartServer(t, server.Config{LoginFailuresPerAccount: 3, LoginFailuresPerAddress: 8})
	srv.AddUser(t, "camille@exemple.fr", auth.RoleConseiller, pw)
	try := func(email, password string) (int, []byte) {
		return srv.PostJSON(t, "/v1/auth/login", "", map[string]string{"email": email, "password": password, "device_id": newDeviceID()})
	}
	for i := range 3 {
		sk, known := try("camille@exemple.fr", "wrong-password")
		su, unknown := try("nobody@exemple.fr", "wrong-password")
		if sk != 401 || su != 401 || !bytes.Equal(known, unknown) || relaistest.ErrorCode(known) != "bad_credentials" {
			t.Fatalf("failure %d: known account %d %s, unknown account %d %s", i, sk, known, su, unknown)
		}
	}
	sk, known := try("CAMILLE@exemple.fr", pw) // the right password, too late; e-mails compare case-insensitively
	su, unknown := try("nobody@exemple.fr", pw)
	// Retry-After counts down by the second, so only the code and message
	// are compared here.
	if sk != 429 || su != 429 || relaistest.ErrorCode(known) != "rate_limited" || relaistest.ErrorCode(unknown) != "rate_limited" {
		t.Fatalf("over the account limit: known %d %s, unknown %d %s", sk, known, su, unknown)
	}
	// The answer says how long to wait (issue 11), in the details and in
	// Retry-After: about the 15-minute window.
	var eb syncproto.ErrorBody
	must(t, json.Unmarshal(known, &eb))
	if secs, _ := eb.Error.Details[syncproto.DetailRetryAfterSeconds].(float64); secs < 60 || secs > 15*60 {
		t.Fatalf("rate_limited without the wait: %s", known)
	}
	// 6 failures from this address so far (refused attempts are not
	// counted); two more on a third account reach the address limit of 8,
	// and a fourth account is refused before its own count starts.
	for range 2 {
		if status, raw := try("third@exemple.fr", "wrong-password"); status != 401 {
			t.Fatalf("a failure under the address limit: %d %s", status, raw)
		}
	}
	if status, raw := try("fourth@exemple.fr", "wrong-password"); status != 429 || relaistest.ErrorCode(raw) != "rate_limited" {
		t.Fatalf("over the address limit: %d %s", status, raw)
	}
	// The counts are in the database, not in one process's memory (issue
	// 11: they were per process, and the dashboard's form counted apart):
	// a second server on the same data directory refuses as well.
	again := relaistest.StartServer(t, server.Config{DataDir: srv.DataDir, LoginFailuresPerAccount: 3, LoginFailuresPerAddress: 8})
	if status, raw := again.PostJSON(t, "/v1/auth/login", "", map[string]string{"email": "camille@exemple.fr", "password": pw, "device_id": newDeviceID()}); status != 429 {
		t.Fatalf("another server process on the same data: %d %s", status, raw)
	}
}

// syncWriter collects log output from the server's handlers.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestNoSecretsInLogs runs logins (good and bad), a refresh, a sync and
// a revocation with the server logging at debug level, and looks for
// every password and token in the log.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	logs := &syncWriter{}
	srv := relaistest.StartServer(t, server.Config{Logger: slog.New(slog.NewJSONHandler(io.MultiWriter(logs), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	u := srv.AddUser(t, "camille@exemple.fr", auth.RoleConseiller, pw)
	dev := newDeviceID()
	first := srv.LoginHTTP(t, u.Email, pw, dev)
	srv.PostJSON(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": "a-wrong-password-xyz", "device_id": dev})
	status, raw := srv.PostJSON(t, "/v1/auth/refresh", "", map[string]string{"refresh_token": first.RefreshToken})
	if status != 200 {
		t.Fatalf("refresh: %d %s", status, raw)
	}
	var second syncproto.TokenResponse
	must(t, json.Unmarshal(raw, &second))
	srv.PostJSON(t, "/v1/sync", second.AccessToken, pushOne(u.ID, dev))
	srv.PostJSON(t, "/v1/auth/refresh", "", map[string]string{"refresh_token": first.RefreshToken + "x"})
	srv.PostJSON(t, "/v1/devices/"+dev+"/revoke", second.AccessToken, map[string]any{})
	out := logs.String()
	if out == "" {
		t.Fatal("nothing was logged; the test would prove nothing")
	}
	for name, secret := range map[string]string{
		"password": pw, "wrong password": "a-wrong-password-xyz", "access token": first.AccessToken,
		"second access token": second.AccessToken, "refresh token": first.RefreshToken, "second refresh token": second.RefreshToken,
		"token signature": strings.Split(second.AccessToken, ".")[2],
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the %s appears in the logs", name)
		}
	}
}
