package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// LoginLimits counts failed logins in the database, per account (the
// e-mail typed, known or not, so the limit says nothing about which
// accounts exist) and per client address, in one place for the sync
// API's login and the dashboard's form. Once either count reaches its
// limit within Window, further attempts are refused, even with the right
// password, until the oldest counted failure leaves the window.
// Successful logins are not counted.
type LoginLimits struct {
	W, R                   *sql.DB
	PerAccount, PerAddress int
	Window                 time.Duration
	Now                    func() time.Time
}

func accountKey(email string) string { return "account:" + strings.ToLower(strings.TrimSpace(email)) }
func addressKey(ip string) string    { return "address:" + ip }

// Wait says how long the caller must wait before trying to log in as
// email from address; zero when they may try now.
func (l *LoginLimits) Wait(ctx context.Context, email, address string) (time.Duration, error) {
	now := l.Now()
	var wait time.Duration
	for _, k := range []struct {
		key string
		max int
	}{{accountKey(email), l.PerAccount}, {addressKey(address), l.PerAddress}} {
		// The max-th most recent failure in the window: while it is in
		// the window, the count is at the limit.
		var at int64
		err := l.R.QueryRowContext(ctx, `SELECT at FROM _login_failures WHERE key = ? AND at > ?
			ORDER BY at DESC LIMIT 1 OFFSET ?`, k.key, now.Add(-l.Window).UnixMilli(), k.max-1).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read failed logins: %w", err)
		}
		wait = max(wait, time.UnixMilli(at).Add(l.Window).Sub(now))
	}
	return wait, nil
}

// Failed counts one failed login as email from address, and sweeps the
// failures that left the window.
func (l *LoginLimits) Failed(ctx context.Context, email, address string) error {
	now := l.Now().UnixMilli()
	tx, err := l.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("count a failed login: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	for _, key := range []string{accountKey(email), addressKey(address)} {
		if _, err := tx.ExecContext(ctx, "INSERT INTO _login_failures (key, at) VALUES (?, ?)", key, now); err != nil {
			return fmt.Errorf("count a failed login: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM _login_failures WHERE at <= ?", now-l.Window.Milliseconds()); err != nil {
		return fmt.Errorf("sweep failed logins: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("count a failed login: %w", err)
	}
	return nil
}
