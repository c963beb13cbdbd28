package device_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

const accessPW = "un-mot-de-passe-solide"

func sqlOn(t *testing.T, r *device.Replica, q string, args ...any) {
	t.Helper()
	if _, err := r.DB().Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func deviceState(t *testing.T, r *device.Replica, col string) string {
	t.Helper()
	var v *string
	if err := r.DB().QueryRow("SELECT " + col + " FROM _device WHERE id = 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		return ""
	}
	return *v
}

// TestOfflineForWeeksSyncsWithoutLogin: a conseillère logs in, works
// three weeks with no network (the server's clock moves on; her access
// token expired long ago), and syncs on return without typing her
// password: the SDK refreshes and retries by itself.
func TestOfflineForWeeksSyncsWithoutLogin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	srv := relaistest.StartServer(t, server.Config{Now: func() time.Time { return time.UnixMilli(now.Load()) }})
	u := srv.AddUser(t, "camille@exemple.fr", "conseiller", accessPW)
	tablet := srv.LoggedInDevice(t, "tablette", u.Email, accessPW)
	office := srv.LoggedInDevice(t, "bureau", u.Email, accessPW)
	userID, err := tablet.UserID(ctx)
	if err != nil || userID != u.ID {
		t.Fatalf("UserID: %q, %v", userID, err)
	}
	firstRefresh := deviceState(t, tablet, "refresh_token")

	act := uuid.Must(uuid.NewV7()).String()
	sqlOn(t, tablet, `INSERT INTO activite (id, mediateur_id, type, date, duree, type_lieu, commune)
		VALUES (?, ?, 'individuel', '2026-03-02', 30, 'domicile', 'Laval')`, act, userID)
	now.Add((21 * 24 * time.Hour).Milliseconds())

	rep, err := tablet.Sync(ctx)
	if err != nil || rep.Pushed == 0 {
		t.Fatalf("sync after three weeks offline: %+v, %v", rep, err)
	}
	if deviceState(t, tablet, "refresh_token") == firstRefresh {
		t.Fatal("the refresh token was not rotated; the sync did not go through a refresh")
	}
	if _, err := office.Sync(ctx); err != nil {
		t.Fatalf("the other device, also three weeks later: %v", err)
	}
	var n int
	if err := office.DB().QueryRow("SELECT COUNT(*) FROM activite WHERE id = ?", act).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the activity did not reach the other device: %d, %v", n, err)
	}
	// A second sync right after uses the new token as is.
	if _, err := tablet.Sync(ctx); err != nil {
		t.Fatalf("second sync: %v", err)
	}
}

// TestRevokedDeviceIsWipedOnNextContact: a tablet is reported lost and
// revoked from another device of its owner; at its next contact the
// server orders the wipe and the SDK erases everything, including what it
// had not synced, down to the file's bytes.
func TestRevokedDeviceIsWipedOnNextContact(t *testing.T) {
	t.Parallel()
	// The wipe is ordered alike by a server on SQLite or on PostgreSQL.
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		u := srv.AddUser(t, "camille@exemple.fr", "conseiller", accessPW)
		lost := srv.LoggedInDevice(t, "perdue", u.Email, accessPW)
		const synced, unsynced = "Zephyrine-Secretnom-4242", "Non-synchronise-7373"
		sqlOn(t, lost, `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom, notes) VALUES (?, ?, 0, 'Zoé', ?, 'rappeler')`,
			uuid.Must(uuid.NewV7()).String(), u.ID, synced)
		if _, err := lost.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		sqlOn(t, lost, `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom) VALUES (?, ?, 0, 'Yves', ?)`,
			uuid.Must(uuid.NewV7()).String(), u.ID, unsynced)

		// The scan below can see the values: before the wipe they are there.
		if !filesContain(t, lost.Path(), synced) || !filesContain(t, lost.Path(), unsynced) {
			t.Fatal("the values are not found in the file before the wipe; the check after it would prove nothing")
		}

		other := srv.LoginHTTP(t, u.Email, accessPW, uuid.Must(uuid.NewV7()).String())
		if status, raw := srv.PostJSON(t, "/v1/devices/"+lost.Node()+"/revoke", other.AccessToken, map[string]any{}); status != 200 {
			t.Fatalf("revoke: %d %s", status, raw)
		}

		_, err := lost.Sync(ctx)
		if syncproto.CodeOf(err) != syncproto.CodeDeviceRevoked {
			t.Fatalf("sync of the revoked device: %v", err)
		}
		st, err := lost.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Revoked || st.LoggedIn || st.Pending != 0 || st.Email != "" {
			t.Fatalf("status after the wipe: %+v", st)
		}
		tables := relaistest.Strings(t, lost.DB(), `SELECT name FROM sqlite_master WHERE type = 'table'
			AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_migrations_%' AND name NOT IN ('_device', '_replica', '_tables', '_columns')`)
		if len(tables) < 5 {
			t.Fatalf("only %d tables listed; the check would prove little", len(tables))
		}
		for _, table := range tables {
			var n int
			if err := lost.DB().QueryRow(`SELECT COUNT(*) FROM "` + table + `"`).Scan(&n); err != nil || n != 0 {
				t.Errorf("table %s holds %d rows after the wipe (%v)", table, n, err)
			}
		}
		// The bytes of the database file and its log hold neither value.
		for _, secret := range []string{synced, unsynced} {
			if filesContain(t, lost.Path(), secret) {
				t.Errorf("the database files still hold %q", secret)
			}
		}
		// Offline, the device knows it is revoked; the server refuses it too.
		if _, err := lost.Sync(ctx); syncproto.CodeOf(err) != syncproto.CodeDeviceRevoked {
			t.Fatalf("second sync after the wipe: %v", err)
		}
		if err := lost.Login(ctx, srv.URL, u.Email, accessPW); err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("logging the revoked device in again: %v", err)
		}
	})
}

// filesContain reports whether the database file or its companions (the
// write-ahead log) contain s, byte for byte.
func filesContain(t *testing.T, path, s string) bool {
	t.Helper()
	files, err := filepath.Glob(path + "*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no database file at %s: %v", path, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(s)) {
			return true
		}
	}
	return false
}

// TestRevokedWhileAwayIsWipedAfterItsTokenExpired: the tablet was revoked
// while it was away for weeks; its access token has expired, so its first
// request is refused as expired, the refresh that follows is answered
// device_revoked, and the wipe happens all the same.
func TestRevokedWhileAwayIsWipedAfterItsTokenExpired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	srv := relaistest.StartServer(t, server.Config{Now: func() time.Time { return time.UnixMilli(now.Load()) }})
	u := srv.AddUser(t, "camille@exemple.fr", "conseiller", accessPW)
	away := srv.LoggedInDevice(t, "absente", u.Email, accessPW)
	sqlOn(t, away, `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom) VALUES (?, ?, 0, 'Zoé', 'Absente-5151')`,
		uuid.Must(uuid.NewV7()).String(), u.ID)
	other := srv.LoginHTTP(t, u.Email, accessPW, uuid.Must(uuid.NewV7()).String())
	if status, raw := srv.PostJSON(t, "/v1/devices/"+away.Node()+"/revoke", other.AccessToken, map[string]any{}); status != 200 {
		t.Fatalf("revoke: %d %s", status, raw)
	}
	now.Add((21 * 24 * time.Hour).Milliseconds())
	if _, err := away.Sync(ctx); syncproto.CodeOf(err) != syncproto.CodeDeviceRevoked {
		t.Fatalf("sync of the revoked device: %v", err)
	}
	var n int
	if err := away.DB().QueryRow("SELECT (SELECT COUNT(*) FROM beneficiaire) + (SELECT COUNT(*) FROM _outbox) + (SELECT COUNT(*) FROM _rows)").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows left after the wipe (%v)", n, err)
	}
	if filesContain(t, away.Path(), "Absente-5151") {
		t.Fatal("the file still holds the erased name")
	}
}
