package web

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// DefaultSilentDays is how long a device may stay without contact before
// the fleet page makes it stand out: ten days, the coordinators' rule of
// thumb for "call them".
const DefaultSilentDays = 10

// Device is one enrolled device as the fleet page shows it. Times are
// zero when the device never did the thing.
type Device struct {
	ID            string    `json:"id"`
	Name          string    `json:"name,omitempty"` // given at login
	OwnerID       string    `json:"owner_id"`
	Owner         string    `json:"owner"`
	OwnerName     string    `json:"owner_name"`
	EnrolledAt    time.Time `json:"enrolled_at"`
	LastSeenAt    time.Time `json:"last_seen_at,omitzero"`
	LastSyncAt    time.Time `json:"last_sync_at,omitzero"`
	Pending       *int64    `json:"pending"`
	AppVersion    string    `json:"app_version,omitempty"`
	SchemaVersion *int64    `json:"schema_version"`
	ClockOffsetMs *int64    `json:"clock_offset_ms"`
	Revoked       bool      `json:"revoked"`
	RevokedAt     time.Time `json:"revoked_at,omitzero"`
	RevokedBy     string    `json:"revoked_by,omitempty"`
	// Silent is set when the last contact (or the enrolment, for a device
	// never seen) is older than the threshold; SilentDays says how old.
	Silent     bool `json:"silent"`
	SilentDays int  `json:"silent_days"`
	CanRevoke  bool `json:"can_revoke"`
}

// deviceSelect reads the devices of the people the viewer may see; its
// one argument is a JSON array of user ids, or NULL for everyone (cast,
// so that PostgreSQL knows its type: see internal/portability).
const deviceSelect = `SELECT d.id, d.user_id, u.email, d.created_at, d.last_seen_at, d.last_sync_at,
	d.pending, COALESCE(d.app_version, ''), d.schema_version, d.clock_offset_ms, d.revoked_at, COALESCE(d.revoked_by, ''),
	COALESCE(d.name, ''), COALESCE(NULLIF(u.name, ''), u.email)
	FROM _devices d JOIN _users u ON u.id = d.user_id
	WHERE (CAST(?1 AS TEXT) IS NULL OR d.user_id IN (SELECT value FROM json_each(?1)))`

func (h *Handler) listDevices(ctx context.Context, v Viewer, silentDays int) ([]Device, error) {
	sc, err := h.scopeOf(ctx, v)
	if err != nil {
		return nil, err
	}
	return h.queryDevices(ctx, sc, silentDays, deviceSelect+" ORDER BY u.email, d.created_at", scopeArg(sc))
}

func (h *Handler) getDevice(ctx context.Context, v Viewer, id string) (Device, error) {
	sc, err := h.scopeOf(ctx, v)
	if err != nil {
		return Device{}, err
	}
	ds, err := h.queryDevices(ctx, sc, DefaultSilentDays, deviceSelect+" AND d.id = ?2", scopeArg(sc), id)
	if err != nil {
		return Device{}, err
	}
	if len(ds) == 0 {
		return Device{}, notFound("Cet appareil n'existe pas ou ne vous est pas visible.")
	}
	return ds[0], nil
}

func (h *Handler) queryDevices(ctx context.Context, sc scope, silentDays int, q string, args ...any) ([]Device, error) {
	emails, err := h.userEmails(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := h.d.DB.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read devices: %w", err)
	}
	defer rows.Close()
	now := h.d.Now()
	var out []Device
	for rows.Next() {
		var d Device
		var created int64
		var seen, synced, pending, schemaV, offset, revoked sql.NullInt64
		if err := rows.Scan(&d.ID, &d.OwnerID, &d.Owner, &created, &seen, &synced, &pending, &d.AppVersion,
			&schemaV, &offset, &revoked, &d.RevokedBy, &d.Name, &d.OwnerName); err != nil {
			return nil, fmt.Errorf("read devices: %w", err)
		}
		d.EnrolledAt = time.UnixMilli(created)
		last := d.EnrolledAt
		if seen.Valid {
			d.LastSeenAt = time.UnixMilli(seen.Int64)
			last = d.LastSeenAt
		}
		if synced.Valid {
			d.LastSyncAt = time.UnixMilli(synced.Int64)
		}
		d.Pending, d.SchemaVersion, d.ClockOffsetMs = ptr(pending), ptr(schemaV), ptr(offset)
		if revoked.Valid {
			d.Revoked, d.RevokedAt = true, time.UnixMilli(revoked.Int64)
			if e, ok := emails[d.RevokedBy]; ok {
				d.RevokedBy = e
			}
		}
		d.SilentDays = int(now.Sub(last) / (24 * time.Hour))
		d.Silent = !d.Revoked && d.SilentDays >= silentDays
		d.CanRevoke = !d.Revoked && (sc.all || sc.view.MayRevoke(d.OwnerID, sc.today))
		out = append(out, d)
	}
	return out, rows.Err()
}

func ptr(n sql.NullInt64) *int64 {
	if !n.Valid {
		return nil
	}
	return &n.Int64
}

// revoke stops a device at once. Its owner, a coordinator of its owner,
// or an administrator may do it.
func (h *Handler) revoke(ctx context.Context, v Viewer, id string) (Device, error) {
	d, err := h.getDevice(ctx, v, id)
	if err != nil {
		return d, err
	}
	if d.Revoked {
		return d, nil
	}
	if !d.CanRevoke {
		return d, forbidden("Vous ne pouvez pas révoquer cet appareil.")
	}
	if err := h.d.RevokeDevice(ctx, v.UserID, id); err != nil {
		return d, fmt.Errorf("revoke device %s: %w", id, err)
	}
	h.d.Log.Info("device revoked from the dashboard", "device", id, "by", v.UserID)
	return h.getDevice(ctx, v, id)
}

type fleetView struct {
	SilentDays int
	Silent     int
	Devices    []Device
}

func silentDaysParam(c *fiber.Ctx, name string) int {
	n, err := strconv.Atoi(c.Query(name))
	if err != nil || n < 1 || n > 3650 {
		return DefaultSilentDays
	}
	return n
}

func (h *Handler) fleetPage(c *fiber.Ctx) error {
	days := silentDaysParam(c, "jours")
	ds, err := h.listDevices(c.UserContext(), viewer(c), days)
	if err != nil {
		return h.pageError(c, err)
	}
	fv := fleetView{SilentDays: days, Devices: ds}
	for _, d := range ds {
		if d.Silent {
			fv.Silent++
		}
	}
	return h.render(c, fiber.StatusOK, "flotte", pageData{Title: "Flotte", Nav: "flotte",
		Notice: noticeText(c.Query("ok")), Data: fv})
}

// fleetRevokeConfirm asks before revoking: a revoked device erases what
// it has not synced, so the page says so and waits for a second click.
// (A confirmation page rather than a script, so it works without one.)
func (h *Handler) fleetRevokeConfirm(c *fiber.Ctx) error {
	d, err := h.getDevice(c.UserContext(), viewer(c), c.Params("id"))
	if err != nil {
		return h.pageError(c, err)
	}
	if d.Revoked {
		return c.Redirect("/flotte", fiber.StatusSeeOther)
	}
	if !d.CanRevoke {
		return h.errorPage(c, fiber.StatusForbidden, "Vous ne pouvez pas révoquer cet appareil.")
	}
	return h.render(c, fiber.StatusOK, "revocation", pageData{Title: "Révoquer un appareil", Nav: "flotte", Data: d})
}

func (h *Handler) fleetRevokeForm(c *fiber.Ctx) error {
	if _, err := h.revoke(c.UserContext(), viewer(c), c.Params("id")); err != nil {
		var ue *userError
		if errors.As(err, &ue) {
			return h.errorPage(c, ue.status, ue.msg)
		}
		return h.pageError(c, err)
	}
	return c.Redirect("/flotte?ok=revoque", fiber.StatusSeeOther)
}
