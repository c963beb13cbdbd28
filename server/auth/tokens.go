package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/relais-numerique/relais/syncproto"
)

// Claims are what an access token says: the user (sub), the device (did)
// and the user's role when the token was issued. The role is a hint for
// the client; the server reads the current role from its database.
type Claims struct {
	jwt.RegisteredClaims
	Device string `json:"did"`
	Role   string `json:"role"`
	// Session is the refresh-token family the token was issued under;
	// ending the family (reuse detected, device revoked) ends its access
	// tokens too, before they expire.
	Session string `json:"sid,omitempty"`
}

// Keys holds the Ed25519 keys that sign access tokens. They live in the
// server database (inside the data directory); the newest unretired key
// signs, and every stored key verifies, so a rotation does not log anyone
// out.
type Keys struct {
	db *sql.DB
	// RetiredVerifyFor is how long a key replaced by a rotation still
	// verifies: the life of the access tokens it signed. Zero keeps
	// retired keys verifying for ever.
	RetiredVerifyFor time.Duration
	Now              func() time.Time
	mu               sync.RWMutex
	keys             map[string]ed25519.PrivateKey
	retired          map[string]time.Time
	active           string
	// lastMiss is when an unknown kid last made us reload: tokens with
	// made-up kids must not turn every request into a table read.
	lastMiss atomic.Int64
}

// mayReload allows one reload per second for unknown kids; a key rotated
// by the admin command is found within a second.
func (k *Keys) mayReload() bool {
	now := time.Now().UnixMilli()
	last := k.lastMiss.Load()
	return now-last >= 1000 && k.lastMiss.CompareAndSwap(last, now)
}

// LoadKeys reads the signing keys, creating the first one when there is
// none.
func LoadKeys(ctx context.Context, db *sql.DB) (*Keys, error) {
	k := &Keys{db: db}
	if err := k.reload(ctx); err != nil {
		return nil, err
	}
	if k.active == "" {
		if _, err := k.Rotate(ctx); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func (k *Keys) reload(ctx context.Context) error {
	rows, err := k.db.QueryContext(ctx, "SELECT kid, private_key, retired_at FROM _signing_keys ORDER BY created_at, kid")
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	defer rows.Close()
	keys := map[string]ed25519.PrivateKey{}
	retired := map[string]time.Time{}
	active := ""
	for rows.Next() {
		var kid string
		var seed []byte
		var retiredAt sql.NullInt64
		if err := rows.Scan(&kid, &seed, &retiredAt); err != nil {
			return fmt.Errorf("load signing keys: %w", err)
		}
		if len(seed) != ed25519.SeedSize {
			return fmt.Errorf("signing key %s is damaged", kid)
		}
		keys[kid] = ed25519.NewKeyFromSeed(seed)
		if retiredAt.Valid {
			retired[kid] = time.UnixMilli(retiredAt.Int64)
		} else {
			active = kid
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	k.mu.Lock()
	k.keys, k.retired, k.active = keys, retired, active
	k.mu.Unlock()
	return nil
}

// Rotate creates a new signing key and makes it the active one. The keys
// it replaces are marked retired and keep verifying for RetiredVerifyFor,
// so nobody is logged out by a rotation.
func (k *Keys) Rotate(ctx context.Context) (string, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", fmt.Errorf("new signing key: %w", err)
	}
	kid := uuid.NewString()
	tx, err := k.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("store signing key: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, "UPDATE _signing_keys SET retired_at = ? WHERE retired_at IS NULL",
		k.now().UnixMilli()); err != nil {
		return "", fmt.Errorf("retire signing keys: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO _signing_keys (kid, private_key, created_at) VALUES (?, ?, ?)",
		kid, seed, time.Now().UnixNano()); err != nil {
		return "", fmt.Errorf("store signing key: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("store signing key: %w", err)
	}
	if err := k.reload(ctx); err != nil {
		return "", err
	}
	return kid, nil
}

func (k *Keys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// signing returns the key to sign with. It first checks the database for
// a newer active key: `relais admin keys rotate` runs in another process,
// and a server that kept signing with the retired key would hand out
// tokens that stop verifying when the key's grace ends. Tokens are signed
// at login and refresh only, so the query is rare.
func (k *Keys) signing() (string, ed25519.PrivateKey) {
	var newest string
	err := k.db.QueryRow("SELECT kid FROM _signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1").Scan(&newest)
	k.mu.RLock()
	stale := err == nil && newest != k.active
	k.mu.RUnlock()
	if stale {
		_ = k.reload(context.Background()) // on failure the known key still signs
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.active, k.keys[k.active]
}

// public returns the verification key for kid, reloading once when the
// kid is unknown (a key rotated by the admin command while we run).
func (k *Keys) public(ctx context.Context, kid string) (ed25519.PublicKey, bool) {
	k.mu.RLock()
	priv, ok := k.keys[kid]
	k.mu.RUnlock()
	if !ok && k.mayReload() {
		if err := k.reload(ctx); err != nil {
			return nil, false
		}
		k.mu.RLock()
		priv, ok = k.keys[kid]
		k.mu.RUnlock()
	}
	if !ok {
		return nil, false
	}
	k.mu.RLock()
	retiredAt, retired := k.retired[kid]
	k.mu.RUnlock()
	if retired && k.RetiredVerifyFor > 0 && k.now().Sub(retiredAt) > k.RetiredVerifyFor {
		return nil, false
	}
	return priv.Public().(ed25519.PublicKey), true
}

// Tokens issues and verifies access tokens.
type Tokens struct {
	Keys     *Keys
	Issuer   string
	Audience string
	TTL      time.Duration
	Now      func() time.Time
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// Issue signs an access token for a user on a device.
func (t *Tokens) Issue(userID, deviceID, role string) (string, time.Duration, error) {
	return t.IssueSession(userID, deviceID, role, "")
}

// IssueSession signs an access token tied to a refresh-token family.
func (t *Tokens) IssueSession(userID, deviceID, role, session string) (string, time.Duration, error) {
	kid, key := t.Keys.signing()
	now := t.now()
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.Issuer,
			Audience:  jwt.ClaimStrings{t.Audience},
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.TTL)),
			ID:        uuid.NewString(),
		},
		Device:  deviceID,
		Role:    role,
		Session: session,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		return "", 0, fmt.Errorf("sign access token: %w", err)
	}
	return s, t.TTL, nil
}

// Verify checks an access token's signature, algorithm, issuer, audience
// and expiry, and returns its claims. Its errors carry the protocol codes
// unauthorized or token_expired and never echo the token.
func (t *Tokens) Verify(ctx context.Context, raw string) (*Claims, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(t.Issuer),
		jwt.WithAudience(t.Audience),
		jwt.WithTimeFunc(t.now),
		jwt.WithLeeway(30*time.Second),
		// Refuse non-canonical base64: otherwise the unused low bits of
		// the last character give every token several spellings that all
		// verify, and a list of refused tokens could be walked around.
		jwt.WithStrictDecoding(),
	)
	var claims Claims
	_, err := p.ParseWithClaims(raw, &claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		pub, ok := t.Keys.public(ctx, kid)
		if !ok {
			return nil, errors.New("unknown signing key")
		}
		return pub, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, syncproto.Errorf(syncproto.CodeTokenExpired, "access token has expired; refresh it")
	case err != nil:
		return nil, syncproto.Errorf(syncproto.CodeUnauthorized, "access token is not valid")
	case claims.Subject == "" || claims.Device == "" || claims.ID == "":
		return nil, syncproto.Errorf(syncproto.CodeUnauthorized, "access token lacks a user, device or id")
	}
	return &claims, nil
}
