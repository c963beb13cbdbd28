package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/relais-numerique/relais/syncproto"
)

// Account is a user as the administrator lists them.
type Account struct {
	User
	Name      string // empty when none was given
	CreatedAt time.Time
	Devices   int // enrolled and not revoked
}

// ListUsers returns every account, by e-mail.
func (a *Accounts) ListUsers(ctx context.Context) ([]Account, error) {
	rows, err := a.R.QueryContext(ctx, `SELECT u.id, u.email, u.role, u.disabled_at IS NOT NULL, COALESCE(u.name, ''), u.created_at,
		(SELECT COUNT(*) FROM _devices d WHERE d.user_id = u.id AND d.revoked_at IS NULL)
		FROM _users u ORDER BY u.email`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		var acc Account
		var created int64
		if err := rows.Scan(&acc.ID, &acc.Email, &acc.Role, &acc.Disabled, &acc.Name, &created, &acc.Devices); err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		acc.CreatedAt = time.UnixMilli(created)
		out = append(out, acc)
	}
	return out, rows.Err()
}

// MaxNameBytes bounds a person's name.
const MaxNameBytes = 100

// ValidName reports whether name may be stored as a person's name:
// printable text of at most MaxNameBytes.
func ValidName(name string) bool {
	return len(name) <= MaxNameBytes && utf8.ValidString(name) && !strings.ContainsFunc(name, unicode.IsControl)
}

// SetName sets the name shown for an account instead of its e-mail.
func (a *Accounts) SetName(ctx context.Context, email, name string) error {
	name = strings.TrimSpace(name)
	if !ValidName(name) {
		return fmt.Errorf("set name: a name is printable text of at most %d bytes", MaxNameBytes)
	}
	return a.updateUser(ctx, email, "UPDATE _users SET name = NULLIF(?, '') WHERE email = ?", name, strings.TrimSpace(email))
}

// SetPassword replaces an account's password. The devices already
// enrolled keep their sessions: a reset is for a forgotten password, and
// revoking a device is what stops one (RevokeDevice).
func (a *Accounts) SetPassword(ctx context.Context, email, password string) error {
	if len(password) < 8 || len(password) > 72 {
		return errors.New("set password: a password has 8 to 72 bytes")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return a.updateUser(ctx, email, "UPDATE _users SET password_hash = ? WHERE email = ?", string(hash), strings.TrimSpace(email))
}

func (a *Accounts) updateUser(ctx context.Context, email, query string, args ...any) error {
	res, err := a.W.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("update account %s: %w", email, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return syncproto.Errorf(syncproto.CodeNotFound, "no such account")
	}
	return nil
}

// UserName is the name an administrator gave the account id ("" when
// none), which a login answer carries so an app can greet her.
func (a *Accounts) UserName(ctx context.Context, id string) (string, error) {
	var name sql.NullString
	if err := a.R.QueryRowContext(ctx, "SELECT name FROM _users WHERE id = ?", id).Scan(&name); err != nil {
		return "", fmt.Errorf("account name: %w", err)
	}
	return name.String, nil
}

// UserNames maps every account's id to the name people read: its name,
// or its e-mail when it has none.
func (a *Accounts) UserNames(ctx context.Context) (map[string]string, error) {
	return userNames(ctx, a.R)
}

func userNames(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT id, COALESCE(NULLIF(name, ''), email) FROM _users")
	if err != nil {
		return nil, fmt.Errorf("account names: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("account names: %w", err)
		}
		out[id] = name
	}
	return out, rows.Err()
}
