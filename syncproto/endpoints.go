package syncproto

import "strings"

// Endpoint paths of the sync API. The server registers its routes with
// them and the device SDK builds its URLs from them, so a path cannot
// change on one side only; an SDK in another language copies this list.
const (
	// PathLogin takes a LoginRequest and answers a TokenResponse.
	PathLogin = "/v1/auth/login"
	// PathRefresh takes a RefreshRequest and answers a TokenResponse.
	PathRefresh = "/v1/auth/refresh"
	// PathSync takes a SyncRequest (or its column form, to a server that
	// lists it in HeaderAcceptPost) and answers a SyncResponse (or its
	// column form, see MediaTypeColumns).
	PathSync = "/v1/sync"
	// PathRevokeDevice takes an empty body and answers a RevokeResponse.
	// The device id goes where ":"+DeviceParam stands (RevokeDevicePath
	// fills it in; the server's router reads it as a path parameter).
	PathRevokeDevice = "/v1/devices/:" + DeviceParam + "/revoke"
	DeviceParam      = "id"
)

// RevokeDevicePath is PathRevokeDevice for one device.
func RevokeDevicePath(deviceID string) string {
	return strings.Replace(PathRevokeDevice, ":"+DeviceParam, deviceID, 1)
}

// LoginRequest is the body of a login, which also enrols DeviceID under
// the account: the device's id is chosen by the device at its first open.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	DeviceID string `json:"device_id"`
	// DeviceName is what the person calls the device ("Tablette"), at
	// most MaxDeviceName bytes; optional. A later login may rename it.
	DeviceName string `json:"device_name,omitempty"`
}

// MaxDeviceName bounds LoginRequest.DeviceName.
const MaxDeviceName = 64

// MaxAppVersion bounds SyncRequest.AppVersion, shown on the fleet page.
const MaxAppVersion = 64

// RefreshRequest trades a refresh token for new tokens. The old refresh
// token is spent.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
	DeviceID     string `json:"device_id"`
}

// TokenResponse answers a successful login or refresh.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"` // seconds, counted from the answer's arrival
	UserID      string `json:"user_id"`
	Role        string `json:"role"`
	DeviceID    string `json:"device_id"`
	// RefreshToken gets new access tokens from PathRefresh, for
	// RefreshExpiresIn seconds if unused; each use returns a new one.
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
	// UserName is the person's name when an administrator gave one
	// (answers to a login only), for an app to greet her by name.
	UserName string `json:"user_name,omitempty"`
}

// RevokeResponse answers a device revocation.
type RevokeResponse struct {
	DeviceID  string `json:"device_id"`
	RevokedAt int64  `json:"revoked_at"` // Unix milliseconds
}

// PathDeviceSchema answers, to anyone (it holds no personal data), the
// SQL a device replica of this server's version is made of: migrations,
// triggers, synced tables, erasure statements and domain rules (Go:
// device.SchemaSQL). SDKs in other languages build their replica from it
// instead of writing that SQL again.
const PathDeviceSchema = "/v1/device/schema"
