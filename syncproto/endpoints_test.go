package syncproto

import (
	"encoding/json"
	"testing"
)

// The auth messages and paths are what devices already in the field
// send and expect: the JSON below is what the server accepted and sent
// before these types moved here, and must stay byte for byte.
func TestAuthMessagesOnTheWire(t *testing.T) {
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"login", LoginRequest{Email: "a@b.fr", Password: "pw", DeviceID: "d"},
			`{"email":"a@b.fr","password":"pw","device_id":"d"}`},
		{"refresh", RefreshRequest{RefreshToken: "rt", DeviceID: "d"},
			`{"refresh_token":"rt","device_id":"d"}`},
		{"tokens", TokenResponse{AccessToken: "at", ExpiresIn: 900, UserID: "u", Role: "conseiller", DeviceID: "d",
			RefreshToken: "rt", RefreshExpiresIn: 3600},
			`{"access_token":"at","expires_in":900,"user_id":"u","role":"conseiller","device_id":"d","refresh_token":"rt","refresh_expires_in":3600}`},
		{"revoke", RevokeResponse{DeviceID: "d", RevokedAt: 1700000000000},
			`{"device_id":"d","revoked_at":1700000000000}`},
		{"clock ahead", Errorf(CodeClockAhead, "m").With(DetailServerTime, 1).With(DetailMaxAheadMs, 2),
			`{"code":"clock_ahead","message":"m","details":{"max_ahead_ms":2,"server_time":1}}`},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.v)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got) != c.want {
			t.Errorf("%s on the wire:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestPaths(t *testing.T) {
	for got, want := range map[string]string{
		PathLogin:                 "/v1/auth/login",
		PathRefresh:               "/v1/auth/refresh",
		PathSync:                  "/v1/sync",
		PathRevokeDevice:          "/v1/devices/:id/revoke",
		RevokeDevicePath("d-123"): "/v1/devices/d-123/revoke",
	} {
		if got != want {
			t.Errorf("path %q, want %q", got, want)
		}
	}
}
