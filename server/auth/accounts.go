package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/relais-numerique/relais/store/pgstore"
	"github.com/relais-numerique/relais/syncproto"
)

// Roles a user can have.
const (
	RoleConseiller   = "conseiller"
	RoleCoordinateur = "coordinateur"
	RoleAdmin        = "admin"
)

// ValidRole reports whether r is one of the roles.
func ValidRole(r string) bool {
	return r == RoleConseiller || r == RoleCoordinateur || r == RoleAdmin
}

// User is an account.
type User struct {
	ID       string
	Email    string
	Role     string
	Disabled bool
}

// Accounts stores users and devices in the server database.
type Accounts struct {
	W *sql.DB // writer
	R *sql.DB // readers
}

// dummyHash is compared against when an account does not exist, so that a
// failed login takes as long whether or not the e-mail is known.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("relais-timing-equaliser"), bcrypt.DefaultCost)

// AddUser creates an account.
func (a *Accounts) AddUser(ctx context.Context, email, role, password string) (User, error) {
	email = strings.TrimSpace(email)
	if _, err := mail.ParseAddress(email); err != nil || strings.ContainsAny(email, " <>") {
		return User{}, fmt.Errorf("add user: %q is not an e-mail address", email)
	}
	if !ValidRole(role) {
		return User{}, fmt.Errorf("add user: role must be conseiller, coordinateur or admin, not %q", role)
	}
	if len(password) < 8 {
		return User{}, errors.New("add user: the password needs at least 8 characters")
	}
	if len(password) > 72 {
		return User{}, errors.New("add user: the password may have at most 72 bytes")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return User{}, fmt.Errorf("add user: %w", err)
	}
	u := User{ID: uuid.Must(uuid.NewV7()).String(), Email: email, Role: role}
	_, err = a.W.ExecContext(ctx, "INSERT INTO _users (id, email, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
		u.ID, u.Email, u.Role, string(hash), time.Now().UnixMilli())
	if err != nil {
		if pgstore.IsUniqueViolation(err) {
			return User{}, fmt.Errorf("add user: an account with e-mail %s already exists", email)
		}
		return User{}, fmt.Errorf("add user: %w", err)
	}
	return u, nil
}

// UserByEmail looks an account up.
func (a *Accounts) UserByEmail(ctx context.Context, email string) (User, error) {
	return a.scanUser(a.R.QueryRowContext(ctx, "SELECT id, email, role, disabled_at IS NOT NULL FROM _users WHERE email = ?", strings.TrimSpace(email)))
}

// UserByID looks an account up.
func (a *Accounts) UserByID(ctx context.Context, id string) (User, error) {
	return a.scanUser(a.R.QueryRowContext(ctx, "SELECT id, email, role, disabled_at IS NOT NULL FROM _users WHERE id = ?", id))
}

func (a *Accounts) scanUser(row *sql.Row) (User, error) {
	var u User
	if err := row.Scan(&u.ID, &u.Email, &u.Role, &u.Disabled); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return u, syncproto.Errorf(syncproto.CodeNotFound, "no such account")
		}
		return u, fmt.Errorf("read account: %w", err)
	}
	return u, nil
}

// CheckPassword returns the account when the password matches. Its error
// is the same whether the account does not exist or the password is
// wrong, so a login failure tells nothing about who has an account.
func (a *Accounts) CheckPassword(ctx context.Context, email, password string) (User, error) {
	bad := syncproto.Errorf(syncproto.CodeBadCredentials, "e-mail or password is wrong")
	var u User
	var hash string
	err := a.R.QueryRowContext(ctx, "SELECT id, email, role, disabled_at IS NOT NULL, password_hash FROM _users WHERE email = ?",
		strings.TrimSpace(email)).Scan(&u.ID, &u.Email, &u.Role, &u.Disabled, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return User{}, bad
	}
	if err != nil {
		return User{}, fmt.Errorf("check password: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return User{}, bad
	}
	if u.Disabled {
		return User{}, syncproto.Errorf(syncproto.CodeUserDisabled, "this account is disabled")
	}
	return u, nil
}

// EnrollDevice records that deviceID belongs to userID. Enrolling again
// on the same account is allowed (a new login after tokens were lost); a
// device id held by another account, or revoked, is refused.
func (a *Accounts) EnrollDevice(ctx context.Context, userID, deviceID, name string) error {
	// One spelling per id: an upper-case or braced form of a taken id
	// would otherwise pass for a new one.
	if id, err := uuid.Parse(deviceID); err != nil || id.String() != deviceID {
		return syncproto.Errorf(syncproto.CodeMalformedBody, "device_id must be a UUID, written in lower case with hyphens")
	}
	name = strings.TrimSpace(name)
	if len(name) > syncproto.MaxDeviceName || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return syncproto.Errorf(syncproto.CodeMalformedBody, "device_name must be printable text of at most %d bytes", syncproto.MaxDeviceName)
	}
	var owner string
	var revoked sql.NullInt64
	err := a.W.QueryRowContext(ctx, "SELECT user_id, revoked_at FROM _devices WHERE id = ?", deviceID).Scan(&owner, &revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		taken, err := a.nodeTaken(ctx, deviceID)
		if err != nil {
			return fmt.Errorf("enroll device: %w", err)
		}
		if taken {
			return errDeviceIDUnavailable()
		}
		_, err = a.W.ExecContext(ctx, "INSERT INTO _devices (id, user_id, name, created_at) VALUES (?, ?, NULLIF(?, ''), ?)",
			deviceID, userID, name, time.Now().UnixMilli())
		if err != nil {
			return fmt.Errorf("enroll device: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("enroll device: %w", err)
	case owner != userID:
		return errDeviceIDUnavailable()
	case revoked.Valid:
		return syncproto.Errorf(syncproto.CodeDeviceRevoked, "this device was revoked; erase it and enrol it again").With(syncproto.DetailWipe, true)
	case name != "":
		if _, err := a.W.ExecContext(ctx, "UPDATE _devices SET name = ? WHERE id = ?", name, deviceID); err != nil {
			return fmt.Errorf("enroll device: name: %w", err)
		}
	}
	return nil
}

// errDeviceIDUnavailable is the one answer for a device id that another
// account enrolled and for one the server reserves: the caller learns
// nothing about which, nor whether the id exists.
func errDeviceIDUnavailable() error {
	return syncproto.Errorf(syncproto.CodeForbidden, "this device id cannot be enrolled; the app must generate a new one")
}

// nodeTaken says whether id already names a writer other than an
// enrolled device: the server's own node id (every pull shows it), or a
// node seen in a version or a batch. A device enrolled under it would
// have others' writes taken for its own (its conflicts, "écriture du
// serveur" on the dashboard). Enrolling is rare (a device's first
// login), so scanning the versions for an unknown id is affordable.
func (a *Accounts) nodeTaken(ctx context.Context, id string) (bool, error) {
	var taken bool
	err := a.R.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM _replica WHERE node = ?1)
		OR EXISTS (SELECT 1 FROM _batches WHERE device_id = ?1)
		OR EXISTS (SELECT 1 FROM _nodes WHERE node = ?1)
		OR EXISTS (SELECT 1 FROM _conflicts WHERE winner_node = ?1 OR loser_node = ?1)`, id).Scan(&taken)
	if err != nil {
		return false, fmt.Errorf("check node id: %w", err)
	}
	return taken, nil
}

// Principal is who makes a request, as checked against the database: the
// token alone is not trusted for revocation, disabling or role.
type Principal struct {
	UserID   string
	DeviceID string
	Role     string
}

// Authorize turns verified claims into a principal, refusing revoked
// devices and disabled users at once rather than when their tokens expire.
func (a *Accounts) Authorize(ctx context.Context, c *Claims) (Principal, error) {
	var role string
	var disabled, revoked bool
	var owner string
	err := a.R.QueryRowContext(ctx, `SELECT u.role, u.disabled_at IS NOT NULL, d.revoked_at IS NOT NULL, d.user_id
		FROM _devices d JOIN _users u ON u.id = d.user_id WHERE d.id = ?`, c.Device).Scan(&role, &disabled, &revoked, &owner)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && owner != c.Subject) {
		return Principal{}, syncproto.Errorf(syncproto.CodeUnauthorized, "access token names an unknown device")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authorize: %w", err)
	}
	if revoked {
		return Principal{}, syncproto.Errorf(syncproto.CodeDeviceRevoked,
			"this device was revoked; its local data must be erased").With(syncproto.DetailWipe, true)
	}
	if disabled {
		return Principal{}, syncproto.Errorf(syncproto.CodeUserDisabled, "this account is disabled")
	}
	if c.Session != "" {
		ended, err := SessionEnded(ctx, a.R, c.Session)
		if err != nil {
			return Principal{}, fmt.Errorf("authorize: %w", err)
		}
		if ended {
			return Principal{}, syncproto.Errorf(syncproto.CodeUnauthorized, "this session was ended; log in again").With(syncproto.DetailLogin, true)
		}
	}
	return Principal{UserID: c.Subject, DeviceID: c.Device, Role: role}, nil
}
