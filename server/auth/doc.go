// Package auth is who is who on the server: accounts and their
// passwords, the devices enrolled under them, and the tokens a device
// presents.
//
// A device is enrolled by its user's login: the device chose its id at
// its first open (it is also its node id in every version it writes), and
// the login binds that id to the account for good; another account cannot
// take it over.
//
// Two tokens, because a tablet may stay offline for weeks and must still
// sync on its return without its user typing a password on a doorstep:
//
//   - The access token (tokens.go) is a short-lived EdDSA JWT naming the
//     user, the device, the role and the session. Verify pins the
//     algorithm, requires an expiry and checks issuer and audience; then
//     Authorize reads the device, the user and the session from the
//     database on every request, so that revoking a device or disabling a
//     user acts at once rather than at expiry. Signing keys live in the
//     database and rotate; an old key keeps verifying for one token life.
//   - The refresh token (refresh.go) is opaque, bound to one device and
//     stored only as its hash. Every use spends it and returns a new one.
//     Presenting a spent token ends its whole family (one login's chain),
//     since a thief or the device holds a copy, except once within a
//     short grace when its successor was never used: that is a device
//     retrying after the answer was lost on a bad link.
//
// Refusals carry what the device must do next in their details
// (syncproto.DetailLogin: log in again; syncproto.DetailWipe: the device
// was revoked and must erase its replica).
package auth
