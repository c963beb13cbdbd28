package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/relais-numerique/relais/syncproto"
)

// Device is an enrolled device as the fleet list shows it.
type Device struct {
	ID         string
	Name       string // given at login; empty if none
	UserID     string
	Email      string
	CreatedAt  time.Time
	LastSeenAt time.Time // zero if never
	LastSyncAt time.Time // zero if never
	Pending    int64
	RevokedAt  time.Time // zero unless revoked
	RevokedBy  string
}

// DeviceByID reads one device.
func (a *Accounts) DeviceByID(ctx context.Context, id string) (Device, error) {
	ds, err := a.listDevices(ctx, "WHERE d.id = ?", id)
	if err != nil {
		return Device{}, err
	}
	if len(ds) == 0 {
		return Device{}, syncproto.Errorf(syncproto.CodeNotFound, "no such device")
	}
	return ds[0], nil
}

// ListDevices lists devices, of one account when email is not empty.
func (a *Accounts) ListDevices(ctx context.Context, email string) ([]Device, error) {
	if email = strings.TrimSpace(email); email != "" {
		return a.listDevices(ctx, "WHERE u.email = ?", email)
	}
	return a.listDevices(ctx, "")
}

func (a *Accounts) listDevices(ctx context.Context, where string, args ...any) ([]Device, error) {
	rows, err := a.R.QueryContext(ctx, `SELECT d.id, d.user_id, u.email, d.created_at, d.last_seen_at, d.last_sync_at,
		d.pending, d.revoked_at, d.revoked_by, COALESCE(d.name, '') FROM _devices d JOIN _users u ON u.id = d.user_id `+where+`
		ORDER BY u.email, d.created_at`, args...)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var d Device
		var created int64
		var seen, synced, pending, revoked sql.NullInt64
		var by sql.NullString
		if err := rows.Scan(&d.ID, &d.UserID, &d.Email, &created, &seen, &synced, &pending, &revoked, &by, &d.Name); err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		d.CreatedAt = time.UnixMilli(created)
		d.LastSeenAt, d.LastSyncAt, d.RevokedAt = millis(seen), millis(synced), millis(revoked)
		d.Pending, d.RevokedBy = pending.Int64, by.String
		out = append(out, d)
	}
	return out, rows.Err()
}

func millis(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64)
}

// RevokeDevice marks a device revoked and ends its sessions in one
// transaction: from the commit on, its access tokens (checked against
// the database on every request) and its refresh tokens are refused, and
// its next request is told to wipe. by names who revoked it, for the
// record. Revoking a revoked device changes nothing.
func (a *Accounts) RevokeDevice(ctx context.Context, deviceID, by string, now time.Time) error {
	tx, err := a.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("revoke device %s: %w", deviceID, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res, err := tx.ExecContext(ctx, "UPDATE _devices SET revoked_at = COALESCE(revoked_at, ?), revoked_by = COALESCE(revoked_by, ?) WHERE id = ?",
		now.UnixMilli(), by, deviceID)
	if err != nil {
		return fmt.Errorf("revoke device %s: %w", deviceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return syncproto.Errorf(syncproto.CodeNotFound, "no such device")
	}
	r := Refresh{Now: func() time.Time { return now }}
	if err := r.EndDevice(ctx, tx, deviceID, "device_revoked"); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("revoke device %s: %w", deviceID, err)
	}
	return nil
}

// SetDisabled disables (or enables again) an account. A disabled user's
// devices are refused on their next request, with user_disabled; they are
// not wiped, since the account may be enabled again.
func (a *Accounts) SetDisabled(ctx context.Context, email string, disabled bool, now time.Time) (User, error) {
	u, err := a.UserByEmail(ctx, email)
	if err != nil {
		return User{}, err
	}
	var at any
	if disabled {
		at = now.UnixMilli()
	}
	if _, err := a.W.ExecContext(ctx, "UPDATE _users SET disabled_at = ? WHERE id = ?", at, u.ID); err != nil {
		return User{}, fmt.Errorf("disable %s: %w", email, err)
	}
	u.Disabled = disabled
	return u, nil
}

// IsNotFound reports whether err says the account or device does not exist.
func IsNotFound(err error) bool {
	var pe *syncproto.Error
	return errors.As(err, &pe) && pe.Code == syncproto.CodeNotFound
}
