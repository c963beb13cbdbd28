package device

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/relais-numerique/relais/syncproto"
)

// accessState is what the device knows of its access token's life: the
// server's expires_in, counted on the monotonic clock from when the
// answer arrived. The device's wall clock is never consulted: on a tablet
// back from three weeks in a drawer it may be anything. A process that
// starts with a stored token knows nothing of it, tries it, and refreshes
// when the server says it expired.
type accessState struct {
	mu    sync.Mutex
	until time.Time // carries a monotonic reading; zero when unknown
	now   func() time.Time
}

func (a *accessState) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

// received records a token valid for expiresIn seconds from now, minus a
// margin for the time the answer took to arrive.
func (a *accessState) received(expiresIn int64) {
	life := time.Duration(expiresIn) * time.Second
	margin := min(30*time.Second, life/10)
	a.mu.Lock()
	a.until = a.clock().Add(life - margin)
	a.mu.Unlock()
}

// stale reports whether the token is known to have expired.
func (a *accessState) stale() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.until.IsZero() && !a.clock().Before(a.until)
}

func (a *accessState) forget() {
	a.mu.Lock()
	a.until = time.Time{}
	a.mu.Unlock()
}

// exchangeAuthed is exchange with token management: it refreshes first
// when the access token is known to have expired, and once, then retries
// once, when the server refuses the token. *token is updated in place.
func (r *Replica) exchangeAuthed(ctx context.Context, server string, token *string, body wireBody, into *syncproto.SyncResponse) (up, down int64, err error) {
	refreshed := false
	if r.access.stale() {
		if *token, err = r.refreshLocked(ctx, server); err != nil {
			return 0, 0, err
		}
		refreshed = true
	}
	up, down, err = r.exchange(ctx, server+syncproto.PathSync, *token, body, into, r.notifyProgress)
	if refreshed {
		return up, down, err
	}
	return r.retryRefusedToken(ctx, server, token, body, into, up, down, err)
}

// retryRefusedToken finishes an exchange sent with *token: when the
// server refused the token, it refreshes it once and sends body again;
// any other outcome is returned as it came. The pipelined pull (sync.go)
// calls it once its request is back, so that the token is only ever
// refreshed and written by the goroutine running Sync.
func (r *Replica) retryRefusedToken(ctx context.Context, server string, token *string, body wireBody, into *syncproto.SyncResponse, up, down int64, err error) (int64, int64, error) {
	code := syncproto.CodeOf(err)
	if code != syncproto.CodeTokenExpired && code != syncproto.CodeUnauthorized {
		return up, down, err
	}
	if *token, err = r.refreshLocked(ctx, server); err != nil {
		return up, down, err
	}
	u, d, err := r.exchange(ctx, server+syncproto.PathSync, *token, body, into, r.notifyProgress)
	return up + u, down + d, err
}

// refreshAttempts is how often one refresh is tried on network errors.
// The server accepts the same refresh token a second time shortly after
// its first use (its answer may have been lost); a third try would be
// taken as a stolen token and end the session.
const refreshAttempts = 2

// refreshLocked trades the stored refresh token for new tokens and stores
// both before returning the access token. syncMu must be held. A refusal
// that means "log in again" clears the stored tokens, so that status says
// so; the replica keeps working offline either way.
func (r *Replica) refreshLocked(ctx context.Context, server string) (string, error) {
	var rt sql.NullString
	if err := r.db.W.QueryRowContext(ctx, "SELECT refresh_token FROM _device WHERE id = 1").Scan(&rt); err != nil {
		return "", fmt.Errorf("refresh: read device state: %w", err)
	}
	if !rt.Valid || rt.String == "" {
		return "", ErrNotLoggedIn
	}
	body, err := json.Marshal(syncproto.RefreshRequest{RefreshToken: rt.String, DeviceID: r.node})
	if err != nil {
		return "", fmt.Errorf("refresh: %w", err)
	}
	var ans syncproto.TokenResponse
	for attempt := 1; ; attempt++ {
		err = r.post(ctx, server+syncproto.PathRefresh, "", body, &ans)
		var pe *syncproto.Error
		if err == nil || errors.As(err, &pe) || attempt == refreshAttempts || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		if syncproto.CodeOf(err) == syncproto.CodeUnauthorized {
			r.access.forget()
			if _, dberr := r.db.W.ExecContext(ctx, "UPDATE _device SET access_token = NULL, refresh_token = NULL WHERE id = 1"); dberr != nil {
				return "", errors.Join(err, dberr)
			}
			return "", fmt.Errorf("refresh: %w (run `relais device login` again; nothing recorded on this device is lost)", err)
		}
		return "", fmt.Errorf("refresh: %w", err)
	}
	// The role may have changed since the login (a conseillère made
	// coordinator): the device's own checks follow it.
	if _, err := r.db.W.ExecContext(ctx, "UPDATE _device SET access_token = ?, refresh_token = ?, role = COALESCE(NULLIF(?, ''), role) WHERE id = 1",
		ans.AccessToken, ans.RefreshToken, ans.Role); err != nil {
		return "", fmt.Errorf("refresh: save tokens: %w", err)
	}
	r.access.received(ans.ExpiresIn)
	return ans.AccessToken, nil
}

// UserID is the id of the account this device is logged in as, the value
// the application writes in mediateur_id of the rows it creates (the
// server refuses rows that name anyone else). It is empty before the
// first login.
func (r *Replica) UserID(ctx context.Context) (string, error) {
	var id sql.NullString
	if err := r.db.W.QueryRowContext(ctx, "SELECT user_id FROM _device WHERE id = 1").Scan(&id); err != nil {
		return "", fmt.Errorf("user id: %w", err)
	}
	return id.String, nil
}
