package auth

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/relais-numerique/relais/migrations"
)

// Found by server.FuzzVerifyToken: a token whose last base64 character
// was changed within its unused bits still verified. Only the spelling
// that was issued may verify.
func TestTokenHasOneSpelling(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := migrations.Up(ctx, db, migrations.Server); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	tokens := &Tokens{Keys: keys, Issuer: "relais", Audience: "relais-sync", TTL: time.Minute}
	tok, _, err := tokens.Issue("u1", "d1", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Verify(ctx, tok); err != nil {
		t.Fatalf("the issued token does not verify: %v", err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		alt := tok[:len(tok)-1] + alphabet[i:i+1]
		if alt == tok {
			continue
		}
		if _, err := tokens.Verify(ctx, alt); err == nil {
			t.Errorf("token with last character %q instead of %q verifies", alphabet[i], tok[len(tok)-1])
		}
	}
}
