package auth

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// FuzzVerify feeds the token parser arbitrary strings (seeds in
// testdata/fuzz/FuzzVerify: alg none, HS256, bad signatures, malformed
// headers and claims, plus a genuine token). Whatever the input, Verify
// must not panic; a refusal carries unauthorized or token_expired and
// never echoes the input; and an acceptance is only ever of a token whose
// EdDSA signature checks against the server's key.
func FuzzVerify(f *testing.F) {
	ctx := context.Background()
	db, err := store.Open(filepath.Join(f.TempDir(), "server.db"), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	if err := migrations.Up(ctx, db.W, migrations.Server); err != nil {
		f.Fatal(err)
	}
	keys, err := LoadKeys(ctx, db.W)
	if err != nil {
		f.Fatal(err)
	}
	tokens := &Tokens{Keys: keys, Issuer: "relais", Audience: "relais-sync", TTL: time.Hour}
	good, _, err := tokens.IssueSession("0192f1a0-0000-7000-8000-000000000001", "0192f1a0-0000-7000-8000-000000000002", RoleConseiller, "s")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	kid, priv := keys.signing()
	pub := priv.Public().(ed25519.PublicKey)

	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := tokens.Verify(ctx, raw)
		if err != nil {
			code := syncproto.CodeOf(err)
			if code != syncproto.CodeUnauthorized && code != syncproto.CodeTokenExpired {
				t.Fatalf("refusal with code %q: %v", code, err)
			}
			if len(raw) > 8 && strings.Contains(err.Error(), raw) {
				t.Fatal("the refusal echoes the token")
			}
			return
		}
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted a token of %d parts", len(parts))
		}
		var hdr struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
		}
		h, err := base64.RawURLEncoding.DecodeString(parts[0])
		if err != nil || json.Unmarshal(h, &hdr) != nil || hdr.Alg != "EdDSA" || hdr.Kid != kid {
			t.Fatalf("accepted a token whose header is %q", h)
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
			t.Fatal("accepted a token not signed by the server's key")
		}
		if claims.Subject == "" || claims.Device == "" || claims.ExpiresAt == nil {
			t.Fatalf("accepted incomplete claims %+v", claims)
		}
	})
}
