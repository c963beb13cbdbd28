package web

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/syncproto"
)

// The JSON API under /v1/dashboard serves the same data the pages show,
// through the same functions, so both follow the same visibility rules.
// Errors use the server's error body and codes.

func apiFail(c *fiber.Ctx, err error) error {
	var ue *userError
	if errors.As(err, &ue) {
		return c.Status(ue.status).JSON(syncproto.ErrorBody{Error: syncproto.Errorf(ue.code, "%s", ue.msg)})
	}
	var pe *syncproto.Error
	if errors.As(err, &pe) {
		status := fiber.StatusBadRequest
		switch pe.Code {
		case syncproto.CodeUnauthorized, syncproto.CodeTokenExpired, syncproto.CodeBadCredentials:
			status = fiber.StatusUnauthorized
		case syncproto.CodeForbidden, syncproto.CodeForbiddenScope, syncproto.CodeDeviceRevoked, syncproto.CodeUserDisabled:
			status = fiber.StatusForbidden
		case syncproto.CodeNotFound:
			status = fiber.StatusNotFound
		case syncproto.CodeBodyTooLarge, syncproto.CodeUnsupportedEncoding:
			status = bodyStatus(pe)
		}
		return c.Status(status).JSON(syncproto.ErrorBody{Error: pe})
	}
	return err // the server's error handler logs it and answers "internal"
}

func (h *Handler) apiMe(c *fiber.Ctx) error {
	v := viewer(c)
	sc, err := h.scopeOf(c.UserContext(), v)
	if err != nil {
		return err
	}
	out := struct {
		Viewer
		All  bool     `json:"sees_everything"`
		Team []Member `json:"team"`
		CSRF string   `json:"csrf_token,omitempty"`
	}{Viewer: v, All: sc.all, Team: sc.members}
	if s := session(c); s != nil {
		out.CSRF = s.CSRF
	}
	return c.JSON(out)
}

func (h *Handler) apiConflicts(c *fiber.Ctx) error {
	limit, _ := strconv.Atoi(c.Query("limit"))
	cs, err := h.listConflicts(c.UserContext(), viewer(c), ConflictFilter{State: c.Query("state", "open"), Limit: limit})
	if err != nil {
		return apiFail(c, err)
	}
	if cs == nil {
		cs = []Conflict{}
	}
	return c.JSON(fiber.Map{"conflicts": cs})
}

func (h *Handler) apiConflict(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return apiFail(c, notFound("no such conflict"))
	}
	cf, err := h.getConflict(c.UserContext(), viewer(c), id)
	if err != nil {
		return apiFail(c, err)
	}
	return c.JSON(cf)
}

func (h *Handler) apiResolve(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return apiFail(c, notFound("no such conflict"))
	}
	var req ResolveRequest
	if err := json.Unmarshal(c.Request().Body(), &req); err != nil {
		return apiFail(c, syncproto.Errorf(syncproto.CodeMalformedBody, "body must be JSON: {\"choice\": \"keep_winner|restore_loser|other_value\", \"value\": ...}"))
	}
	cf, err := h.resolve(c.UserContext(), viewer(c), id, req)
	if err != nil {
		return apiFail(c, err)
	}
	return c.JSON(cf)
}

func (h *Handler) apiDevices(c *fiber.Ctx) error {
	ds, err := h.listDevices(c.UserContext(), viewer(c), silentDaysParam(c, "silent_days"))
	if err != nil {
		return apiFail(c, err)
	}
	if ds == nil {
		ds = []Device{}
	}
	return c.JSON(fiber.Map{"devices": ds})
}

func (h *Handler) apiRevoke(c *fiber.Ctx) error {
	d, err := h.revoke(c.UserContext(), viewer(c), c.Params("id"))
	if err != nil {
		return apiFail(c, err)
	}
	return c.JSON(d)
}

func (h *Handler) apiStats(c *fiber.Ctx) error {
	f, err := h.filterFrom(c)
	if err != nil {
		return apiFail(c, err)
	}
	st, _, err := h.stats(c.UserContext(), viewer(c), f)
	if err != nil {
		return apiFail(c, err)
	}
	return c.JSON(st)
}

func (h *Handler) apiActivities(c *fiber.Ctx) error {
	f, err := h.filterFrom(c)
	if err != nil {
		return apiFail(c, err)
	}
	acts, err := h.activities(c.UserContext(), viewer(c), f, nil)
	if err != nil {
		return apiFail(c, err)
	}
	if acts == nil {
		acts = []Activity{}
	}
	return c.JSON(fiber.Map{"filter": f, "activities": acts})
}
