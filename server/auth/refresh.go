package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/syncproto"
)

// refreshPrefix marks refresh tokens so that one pasted where an access
// token is expected (or the reverse) is recognised at a glance in a bug
// report, without revealing anything.
const refreshPrefix = "rt1_"

// Refresh issues and rotates refresh tokens: opaque random strings bound
// to one device, stored only as hashes. A device that stayed offline for
// weeks presents its refresh token on return and gets a new access token
// without its user typing a password on a doorstep.
type Refresh struct {
	W *sql.DB // writer: every refresh rotates, so every refresh writes
	// R, when set, is a reader: a token that is not in the database is
	// refused there, without waiting for (or holding) the single writer.
	R *sql.DB
	// Idle is how long a refresh token stays usable without being used.
	Idle time.Duration
	// Absolute is how long a family (one login) lives, however often it
	// is refreshed.
	Absolute time.Duration
	// Grace is how long after a token was used a second presentation of
	// it is taken as a retry after a lost answer, not as theft.
	Grace time.Duration
	Now   func() time.Time
}

func (r *Refresh) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Session is what a successful login or refresh hands out besides the
// access token.
type Session struct {
	Family       string // the "sid" of access tokens issued with it
	UserID       string
	DeviceID     string
	Role         string
	RefreshToken string
	// RefreshExpiresIn is how long the new refresh token stays usable if
	// it is not used (the smaller of the idle and the absolute limit).
	RefreshExpiresIn time.Duration
}

func newRefreshToken() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("new refresh token: %w", err)
	}
	tok := refreshPrefix + base64.RawURLEncoding.EncodeToString(b)
	return tok, hashToken(tok), nil
}

// wellFormed says whether tok has the shape newRefreshToken gives: the
// prefix and 32 bytes in unpadded base64url. Anything else is refused
// before the database is asked.
func wellFormed(tok string) bool {
	rest, ok := strings.CutPrefix(tok, refreshPrefix)
	if !ok || len(rest) != base64.RawURLEncoding.EncodedLen(32) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	return err == nil && len(b) == 32
}

// hashToken is a plain SHA-256: the token carries 256 random bits, so a
// slow password hash would add nothing but latency.
func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// Start opens a new family for a device that just logged in, ending the
// device's earlier families: one device holds one live session.
func (r *Refresh) Start(ctx context.Context, u User, deviceID string) (Session, error) {
	now := r.now()
	tok, hash, err := newRefreshToken()
	if err != nil {
		return Session{}, err
	}
	fam := uuid.Must(uuid.NewV7()).String()
	err = r.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE _refresh_families SET revoked_at = ?, revoked_reason = 'relogin'
			WHERE device_id = ? AND revoked_at IS NULL`, now.UnixMilli(), deviceID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO _refresh_families (id, device_id, user_id, created_at) VALUES (?, ?, ?, ?)",
			fam, deviceID, u.ID, now.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO _refresh_tokens (hash, family, issued_at) VALUES (?, ?, ?)", hash, fam, now.UnixMilli())
		return err
	})
	if err != nil {
		return Session{}, fmt.Errorf("start session: %w", err)
	}
	return Session{Family: fam, UserID: u.ID, DeviceID: deviceID, Role: u.Role, RefreshToken: tok,
		RefreshExpiresIn: min(r.Idle, r.Absolute)}, nil
}

// errRefreshInvalid is the one answer for a token that is unknown,
// malformed or ended: the caller learns nothing about which.
func errRefreshInvalid() error {
	return syncproto.Errorf(syncproto.CodeUnauthorized, "refresh token is not valid; log in again").With(syncproto.DetailLogin, true)
}

// Rotate exchanges a refresh token for a new one. deviceID, when given,
// must be the device the token is bound to. Presenting a token that was
// already used ends its whole family (a copy is in someone else's hands),
// except once within Grace of its use, when the first answer may have
// been lost on a bad link: then the successor that never arrived is
// replaced by a new one.
func (r *Refresh) Rotate(ctx context.Context, token, deviceID string) (Session, error) {
	if !wellFormed(token) {
		return Session{}, errRefreshInvalid()
	}
	now := r.now()
	hash := hashToken(token)
	if r.R != nil {
		var one int
		err := r.R.QueryRowContext(ctx, "SELECT 1 FROM _refresh_tokens WHERE hash = ?", hash).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return Session{}, errRefreshInvalid()
		}
		if err != nil {
			return Session{}, fmt.Errorf("refresh: look up token: %w", err)
		}
	}
	next, nextHash, err := newRefreshToken()
	if err != nil {
		return Session{}, err
	}
	var s Session
	var refusal error
	var famCreated int64
	// A rotation that lost a race for its token (errRaced) reads it again
	// and is judged as if it had come second: a retry within the grace,
	// or a reuse.
	for try := 0; ; try++ {
		s, famCreated, refusal, err = r.rotateOnce(ctx, hash, deviceID, nextHash, now)
		if !errors.Is(err, errRaced) || try == 2 {
			break
		}
	}
	if err != nil {
		return Session{}, fmt.Errorf("refresh: %w", err)
	}
	if refusal != nil {
		return Session{}, refusal
	}
	s.RefreshToken = next
	s.RefreshExpiresIn = min(r.Idle, r.Absolute-now.Sub(time.UnixMilli(famCreated)))
	return s, nil
}

// errRaced: another rotation of the same token committed between this
// one's read and its write.
var errRaced = errors.New("refresh token rotated concurrently")

// claim turns an update of a token that found it already claimed by a
// concurrent rotation into errRaced. With one SQLite writer that cannot
// happen; with several servers on PostgreSQL, two rotations of one token
// may both read it unused, and the row lock makes the second update wait
// for the first's commit and then match nothing: without this check both
// would hand out a successor, and a stolen token would go unnoticed.
func claim(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return errRaced
	}
	return nil
}

// rotateOnce is one attempt of Rotate, in one transaction.
// It returns the session (without its new token), the family's start,
// and either a refusal for the caller or an error.
func (r *Refresh) rotateOnce(ctx context.Context, hash []byte, deviceID string, nextHash []byte, now time.Time) (
	s Session, famCreated int64, refusal, err error) {
	err = r.write(ctx, func(tx *sql.Tx) error {
		var issued int64
		var used, tokRevoked, famRevoked, devRevoked, disabled sql.NullInt64
		var retried bool
		var replacedBy []byte
		err := tx.QueryRowContext(ctx, `SELECT t.issued_at, t.used_at, t.revoked_at, t.retried, t.replaced_by,
				f.id, f.created_at, f.revoked_at, f.device_id, f.user_id, d.revoked_at, u.disabled_at, u.role
			FROM _refresh_tokens t
			JOIN _refresh_families f ON f.id = t.family
			JOIN _devices d ON d.id = f.device_id
			JOIN _users u ON u.id = f.user_id
			WHERE t.hash = ?`, hash).
			Scan(&issued, &used, &tokRevoked, &retried, &replacedBy, &s.Family, &famCreated, &famRevoked, &s.DeviceID, &s.UserID, &devRevoked, &disabled, &s.Role)
		if errors.Is(err, sql.ErrNoRows) {
			refusal = errRefreshInvalid()
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case deviceID != "" && deviceID != s.DeviceID:
			refusal = errRefreshInvalid()
			return nil
		case devRevoked.Valid:
			refusal = syncproto.Errorf(syncproto.CodeDeviceRevoked, "this device was revoked; its local data must be erased").With(syncproto.DetailWipe, true)
			return nil
		case disabled.Valid:
			refusal = syncproto.Errorf(syncproto.CodeUserDisabled, "this account is disabled")
			return nil
		case famRevoked.Valid:
			refusal = errRefreshInvalid()
			return nil
		case tokRevoked.Valid:
			// A successor replaced by the retry of a lost answer (or by a
			// second, simultaneous refresh of its parent): the retry's
			// chain is the one that lives on, so this one must not.
			refusal = errRefreshInvalid()
			return nil
		case now.Sub(time.UnixMilli(famCreated)) > r.Absolute || now.Sub(time.UnixMilli(issued)) > r.Idle:
			refusal = syncproto.Errorf(syncproto.CodeUnauthorized, "refresh token has expired; log in again").With(syncproto.DetailLogin, true)
			return nil
		}
		if used.Valid {
			ok, err := r.retryAllowed(ctx, tx, now, used.Int64, retried, replacedBy)
			if err != nil {
				return err
			}
			if !ok {
				// The token was used before and this is not the one
				// retry a lost answer earns: a copy exists elsewhere.
				// Whoever holds the family's live token, the thief or the
				// device, loses it; the device logs in again.
				if _, err := tx.ExecContext(ctx, `UPDATE _refresh_families SET revoked_at = ?, revoked_reason = 'reuse'
					WHERE id = ?`, now.UnixMilli(), s.Family); err != nil {
					return err
				}
				refusal = syncproto.Errorf(syncproto.CodeUnauthorized,
					"refresh token was already used; this session is ended, log in again").With(syncproto.DetailLogin, true)
				return nil
			}
			if _, err := tx.ExecContext(ctx, "UPDATE _refresh_tokens SET revoked_at = ? WHERE hash = ?", now.UnixMilli(), replacedBy); err != nil {
				return err
			}
			if err := claim(tx.ExecContext(ctx, "UPDATE _refresh_tokens SET retried = 1, replaced_by = ? WHERE hash = ? AND retried = 0",
				nextHash, hash)); err != nil {
				return err
			}
		} else if err := claim(tx.ExecContext(ctx, "UPDATE _refresh_tokens SET used_at = ?, replaced_by = ? WHERE hash = ? AND used_at IS NULL",
			now.UnixMilli(), nextHash, hash)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO _refresh_tokens (hash, family, issued_at) VALUES (?, ?, ?)", nextHash, s.Family, now.UnixMilli())
		return err
	})
	return s, famCreated, refusal, err
}

// retryAllowed says whether a second presentation of a used token is the
// retry of a refresh whose answer was lost: within Grace of the first
// use, only once, and only while the successor it produced was never
// used (a used successor proves the answer did arrive).
func (r *Refresh) retryAllowed(ctx context.Context, tx *sql.Tx, now time.Time, usedAt int64, retried bool, successor []byte) (bool, error) {
	if retried || now.Sub(time.UnixMilli(usedAt)) > r.Grace || len(successor) == 0 {
		return false, nil
	}
	var succUsed, succRevoked sql.NullInt64
	err := tx.QueryRowContext(ctx, "SELECT used_at, revoked_at FROM _refresh_tokens WHERE hash = ?", successor).Scan(&succUsed, &succRevoked)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !succUsed.Valid && !succRevoked.Valid, nil
}

// EndDevice ends every session of a device (revocation).
func (r *Refresh) EndDevice(ctx context.Context, tx *sql.Tx, deviceID, reason string) error {
	_, err := tx.ExecContext(ctx, `UPDATE _refresh_families SET revoked_at = ?, revoked_reason = ?
		WHERE device_id = ? AND revoked_at IS NULL`, r.now().UnixMilli(), reason, deviceID)
	if err != nil {
		return fmt.Errorf("end sessions of device %s: %w", deviceID, err)
	}
	return nil
}

// SessionEnded reports whether the family an access token names was
// ended, so that its access tokens stop working at once.
func SessionEnded(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, family string) (bool, error) {
	var revoked sql.NullInt64
	err := q.QueryRowContext(ctx, "SELECT revoked_at FROM _refresh_families WHERE id = ?", family).Scan(&revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read session %s: %w", family, err)
	}
	return revoked.Valid, nil
}

func (r *Refresh) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := r.W.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // fn's error is the one to report
		return err
	}
	return tx.Commit()
}
