package web

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/replica"
	syncscope "github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/syncproto"
)

// Resolutions recorded in _conflicts.resolution.
const (
	ResolveKeepWinner   = "keep_winner"
	ResolveRestoreLoser = "restore_loser"
	ResolveOther        = "other_value"
)

// Conflict is one concurrent write that lost, as the viewer may see it.
type Conflict struct {
	ID          int64  `json:"id"`
	Table       string `json:"table"`
	TableLabel  string `json:"table_label"`
	PK          string `json:"pk"`
	Column      string `json:"column"`
	ColumnLabel string `json:"column_label"`
	Record      string `json:"record"`
	OwnerID     string `json:"owner_id,omitempty"`
	OwnerEmail  string `json:"owner_email,omitempty"`
	OwnerName   string `json:"owner_name,omitempty"`
	// SameAuthor is set when one person wrote both versions, on two of
	// her devices.
	SameAuthor bool `json:"same_author"`
	// Personal is set for a field shown to the row's owner only (a
	// beneficiary's identity, an activity's notes: see isPersonal); Hidden
	// when its values are withheld from this viewer.
	Personal   bool      `json:"personal"`
	Hidden     bool      `json:"hidden"`
	Winner     Side      `json:"winner"`
	Loser      Side      `json:"loser"`
	DetectedAt time.Time `json:"detected_at"`
	Resolved   bool      `json:"resolved"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	ResolvedBy string    `json:"resolved_by,omitempty"`
	Resolution string    `json:"resolution,omitempty"`
	CanResolve bool      `json:"can_resolve"`
}

// Side is one of the two concurrent writes.
type Side struct {
	Value     any       `json:"value"`
	Display   string    `json:"display"`
	WrittenAt time.Time `json:"written_at"`
	HLC       int64     `json:"hlc"`
	DeviceID  string    `json:"device_id"`
	// DeviceName is the name the device was given at login, if any.
	DeviceName string `json:"device_name,omitempty"`
	AuthorID   string `json:"author_id,omitempty"`
	Author     string `json:"author"`
}

// ResolutionLabel is the resolution in French.
func (c Conflict) ResolutionLabel() string {
	switch c.Resolution {
	case ResolveKeepWinner:
		return "Version retenue conservée"
	case ResolveRestoreLoser:
		return "Version écartée rétablie"
	case ResolveOther:
		return "Autre valeur saisie"
	}
	return c.Resolution
}

var conflictSelect = `SELECT c.id, c.tbl, c.pk, c.col, c.winner_val, c.winner_hlc, c.winner_node,
	c.loser_val, c.loser_hlc, c.loser_node, c.detected_at, c.resolved_at, COALESCE(c.resolved_by, ''), COALESCE(c.resolution, ''),
	COALESCE(wd.user_id, ''), COALESCE(ld.user_id, ''), COALESCE(` + ownerExpr + `, ''), COALESCE(wd.name, ''), COALESCE(ld.name, '')
	FROM _conflicts c
	LEFT JOIN _devices wd ON wd.id = c.winner_node
	LEFT JOIN _devices ld ON ld.id = c.loser_node
	LEFT JOIN _rows r ON r.tbl = (SELECT t.id FROM _tables t WHERE t.name = c.tbl) AND r.pk = ` + rowKey + `
	LEFT JOIN _owners o ON o.id = r.owner
	LEFT JOIN coordination co ON c.tbl = 'coordination' AND co.id = c.pk
	LEFT JOIN mediateur_en_activite mea ON c.tbl = 'mediateur_en_activite' AND mea.id = c.pk`

// rowKey is a conflict's key in the form _rows.pk holds it.
var rowKey = replica.PKSQL("c.pk")

// ownerExpr is the person a conflict's record is about: its owner as its
// version record holds it (owned tables), or the médiateur a team row
// names (coordinations, and where médiateurs work, which have no owner).
const ownerExpr = "COALESCE(o.owner, co.mediateur_id, mea.mediateur_id)"

// visibleClause keeps the conflicts on records the viewer may see, or
// written by someone whose records they may see. Its one argument is a
// JSON array of user ids (or NULL for everything), typed for PostgreSQL,
// which cannot tell a parameter's type from "IS NULL" alone.
var visibleClause = `(CAST(?1 AS TEXT) IS NULL OR ` + ownerExpr + ` IN (SELECT value FROM json_each(?1))
	OR wd.user_id IN (SELECT value FROM json_each(?1)) OR ld.user_id IN (SELECT value FROM json_each(?1)))`

func scopeArg(s scope) any {
	if s.all {
		return nil
	}
	ids := s.userIDs()
	if ids == nil {
		ids = []string{}
	}
	b, _ := json.Marshal(ids) // a slice of strings always marshals
	return string(b)
}

// ConflictFilter selects conflicts: "open" (default), "resolved", "all".
type ConflictFilter struct {
	State string
	Limit int
}

func (h *Handler) listConflicts(ctx context.Context, v Viewer, f ConflictFilter) ([]Conflict, error) {
	sc, err := h.scopeOf(ctx, v)
	if err != nil {
		return nil, err
	}
	q := conflictSelect + " WHERE " + visibleClause
	switch f.State {
	case "resolved":
		q += " AND c.resolved_at IS NOT NULL"
	case "all":
	default:
		q += " AND c.resolved_at IS NULL"
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 500
	}
	q += " ORDER BY c.id DESC LIMIT " + strconv.Itoa(f.Limit)
	return h.queryConflicts(ctx, v, sc, q, scopeArg(sc))
}

func (h *Handler) getConflict(ctx context.Context, v Viewer, id int64) (Conflict, error) {
	sc, err := h.scopeOf(ctx, v)
	if err != nil {
		return Conflict{}, err
	}
	cs, err := h.queryConflicts(ctx, v, sc, conflictSelect+" WHERE "+visibleClause+" AND c.id = ?2", scopeArg(sc), id)
	if err != nil {
		return Conflict{}, err
	}
	if len(cs) == 0 {
		// The same answer whether it does not exist or is not the
		// viewer's: a conflict's existence says something too.
		return Conflict{}, notFound("Ce conflit n'existe pas ou ne vous est pas visible.")
	}
	return cs[0], nil
}

func (h *Handler) queryConflicts(ctx context.Context, v Viewer, sc scope, q string, args ...any) ([]Conflict, error) {
	emails, err := h.userEmails(ctx)
	if err != nil {
		return nil, err
	}
	names, err := h.userNames(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := h.d.DB.R.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read conflicts: %w", err)
	}
	defer rows.Close()
	rules := h.rules()
	schema := h.d.Schema()
	var out []Conflict
	for rows.Next() {
		var c Conflict
		var detected int64
		var resolved sql.NullInt64
		var owner any
		if err := rows.Scan(&c.ID, &c.Table, &c.PK, &c.Column, &c.Winner.Value, &c.Winner.HLC, &c.Winner.DeviceID,
			&c.Loser.Value, &c.Loser.HLC, &c.Loser.DeviceID, &detected, &resolved, &c.ResolvedBy, &c.Resolution,
			&c.Winner.AuthorID, &c.Loser.AuthorID, &owner, &c.Winner.DeviceName, &c.Loser.DeviceName); err != nil {
			return nil, fmt.Errorf("read conflicts: %w", err)
		}
		// Only in an owned table does mediateur_id name the row's owner;
		// in the team tables it names the médiateur concerned, who does
		// not own the row (only administrators write those).
		if rules.Owned(c.Table) {
			c.OwnerID = textOf(owner)
		}
		c.OwnerEmail, c.OwnerName = emails[c.OwnerID], names[c.OwnerID]
		if !resolved.Valid && sameValue(c.Winner.Value, c.Loser.Value) {
			// Both sides hold the same value (or both are empty, as
			// after an erasure met the retention job): nothing to decide.
			continue
		}
		c.TableLabel, c.ColumnLabel = tableLabel(c.Table), columnLabel(c.Column)
		c.DetectedAt = time.UnixMilli(detected)
		if resolved.Valid {
			c.Resolved, c.ResolvedAt = true, time.UnixMilli(resolved.Int64)
			c.ResolvedBy = emails[c.ResolvedBy]
		}
		c.Personal = isPersonal(c.Table, c.Column)
		c.Hidden = c.Personal && c.OwnerID != v.UserID
		for _, s := range []*Side{&c.Winner, &c.Loser} {
			// A number comes back as text from PostgreSQL's log.
			s.Value = schema.StoredValue(c.Table, c.Column, plainValue(s.Value))
			s.WrittenAt = time.UnixMilli(syncproto.Timestamp(s.HLC).Millis())
			s.Author = h.authorName(s, names)
			if c.Hidden {
				s.Value, s.Display = nil, "Donnée personnelle, visible par le conseiller qui suit la fiche"
			} else {
				s.Display = valueLabel(c.Column, s.Value)
			}
		}
		c.SameAuthor = c.Winner.AuthorID != "" && c.Winner.AuthorID == c.Loser.AuthorID
		c.CanResolve = !c.Resolved && h.mayResolve(v, sc, c)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read conflicts: %w", err)
	}
	if out, err = h.onVisibleRows(ctx, sc, out); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Record = h.describeRecord(ctx, v, out[i].Table, out[i].PK, out[i].OwnerID)
	}
	return out, nil
}

// onVisibleRows keeps, of the conflicts on rows the viewer does not own,
// those on rows their pull would deliver (server/scope's filter: a
// coordinator sees a team row only when it is dated inside the
// coordination; a coordination row only when it names them), so that
// the dashboard shows no more than the devices receive.
func (h *Handler) onVisibleRows(ctx context.Context, sc scope, cs []Conflict) ([]Conflict, error) {
	if sc.all || sc.view == nil {
		return cs, nil
	}
	rules := h.rules()
	var probe []syncproto.Change
	for _, c := range cs {
		if c.OwnerID != "" && c.OwnerID == sc.self {
			continue
		}
		// The row is judged, not the field: a personal field's conflict
		// is listed (masked) wherever its row is.
		col := c.Column
		if rules.Owned(c.Table) {
			col = syncscope.OwnerColumn
		}
		probe = append(probe, syncproto.Change{Table: c.Table, PK: c.PK, Column: col})
	}
	if len(probe) == 0 {
		return cs, nil
	}
	kept, err := sc.view.Filter(ctx, h.d.DB.R, probe, nil)
	if err != nil {
		return nil, fmt.Errorf("read conflicts: %w", err)
	}
	visible := map[syncproto.RowKey]bool{}
	for _, k := range kept {
		visible[k.Row()] = true
	}
	out := cs[:0]
	for _, c := range cs {
		if (c.OwnerID != "" && c.OwnerID == sc.self) || visible[syncproto.RowKey{Table: c.Table, PK: c.PK}] {
			out = append(out, c)
		}
	}
	return out, nil
}

// mayResolve follows the sync scopes' write rules (server/scope), as the
// resolution itself does: an administrator resolves anything; the owner
// of a row its fields; their coordinator, while coordinating them, the
// fields a coordinator receives (not personal ones, not the owner); a
// row of a team or reference table (coordination, structure...) only an
// administrator.
func (h *Handler) mayResolve(v Viewer, sc scope, c Conflict) bool {
	if sc.all {
		return true
	}
	return sc.view != nil && sc.view.MayResolve(c.Table, c.Column, c.OwnerID, sc.today)
}

// ServerAuthor names a write made on the server itself rather than on a
// device: by an administrator's command, the erasure or retention job,
// or a conflict resolved on this dashboard.
const ServerAuthor = "le serveur Relais (administration, effacement RGPD, rétention ou résolution d'un conflit)"

func (h *Handler) authorName(s *Side, names map[string]string) string {
	switch {
	case s.DeviceID == h.d.ServerNode || strings.HasPrefix(s.DeviceID, "admin-"):
		return ServerAuthor
	case s.AuthorID != "":
		if s.DeviceName != "" {
			return names[s.AuthorID] + " (" + s.DeviceName + ")"
		}
		return names[s.AuthorID]
	}
	return "Appareil inconnu"
}

// sameValue reports whether two cell values say the same thing, whatever
// their types (1 and "1", 60 and 60.0; nil and nil).
func sameValue(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return textOf(a) == textOf(b)
}

// describeRecord names a record for a person: the activity's type and
// date, a beneficiary's name for its owner only, a structure's name.
func (h *Handler) describeRecord(ctx context.Context, v Viewer, table, pk string, owner string) string {
	short := pk
	if len(short) > 8 {
		short = pk[len(pk)-8:]
	}
	cells, err := replica.RowCells(ctx, h.d.DB.R, h.d.Schema(), table, pk)
	if err != nil {
		return tableLabel(table) + " …" + short
	}
	get := func(c string) string { return textOf(cells[c]) }
	switch table {
	case "activite":
		parts := []string{valueLabel("type", cells["type"])}
		if cells["type"] == nil {
			parts[0] = "Activité"
		}
		if d := get("date"); d != "" {
			parts = append(parts, "du "+frenchDate(d))
		}
		if cm := get("commune"); cm != "" {
			parts = append(parts, "à "+cm)
		}
		return strings.Join(parts, " ")
	case "beneficiaire":
		if owner == v.UserID && (get("prenom") != "" || get("nom") != "") {
			return strings.TrimSpace("Bénéficiaire " + get("prenom") + " " + get("nom"))
		}
		return "Bénéficiaire …" + short
	case "structure":
		if n := get("nom"); n != "" {
			return "Structure « " + n + " »"
		}
	}
	return tableLabel(table) + " …" + short
}

// frenchDate turns "2026-11-26" into "26/11/2026".
func frenchDate(d string) string {
	t, err := time.Parse(time.DateOnly, dateOnly(d))
	if err != nil {
		return d
	}
	return t.Format("02/01/2006")
}

func textOf(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []byte:
		return string(x)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func plainValue(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// ResolveRequest is the body of POST /v1/dashboard/conflicts/{id}/resolve.
type ResolveRequest struct {
	// Choice is keep_winner, restore_loser or other_value.
	Choice string `json:"choice"`
	// Value is the new value when Choice is other_value (null clears).
	Value any `json:"value"`
}

// resolve writes the chosen value as a new server write with a fresh
// clock, and marks every open conflict of that cell resolved, in one
// transaction: the resolution reaches every replica at its next pull.
func (h *Handler) resolve(ctx context.Context, v Viewer, id int64, req ResolveRequest) (Conflict, error) {
	c, err := h.getConflict(ctx, v, id)
	if err != nil {
		return c, err
	}
	if c.Resolved {
		return c, &userError{status: fiber.StatusConflict, code: syncproto.CodeConflict, msg: "Ce conflit est déjà résolu."}
	}
	if !c.CanResolve {
		if c.Personal {
			return c, forbidden("Ce champ est une donnée personnelle : seul le conseiller qui suit cette fiche peut résoudre ce conflit.")
		}
		return c, forbidden("Vous ne pouvez pas résoudre ce conflit.")
	}
	var val any
	switch req.Choice {
	case ResolveKeepWinner:
		val = c.Winner.Value
	case ResolveRestoreLoser:
		val = c.Loser.Value
	case ResolveOther:
		if val, err = h.parseValue(c.Table, c.Column, req.Value); err != nil {
			return c, err
		}
	default:
		return c, badRequest("Choisissez la version à garder : la version retenue, la version écartée ou une autre valeur.")
	}
	now := h.d.Now()
	err = h.d.DB.Write(ctx, func(tx *sql.Tx) error {
		// The same checks as a pushed change: a resolution is a write.
		if err := h.d.WriteRowAs(ctx, tx, v.who(), c.Table, c.PK, map[string]any{c.Column: val}); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE _conflicts SET resolved_at = ?, resolved_by = ?, resolution = ?
			WHERE tbl = ? AND pk = ? AND col = ? AND resolved_at IS NULL`,
			now.UnixMilli(), v.UserID, req.Choice, c.Table, c.PK, c.Column)
		if err != nil {
			return fmt.Errorf("record resolution of conflict %d: %w", id, err)
		}
		return nil
	})
	if err != nil {
		if ue := refusal(err); ue != nil {
			h.d.Log.Info("conflict resolution refused", "conflict", id, "by", v.UserID, "code", syncproto.CodeOf(err))
			return c, ue
		}
		return c, fmt.Errorf("resolve conflict %d: %w", id, err)
	}
	h.d.Log.Info("conflict resolved", "conflict", id, "by", v.UserID, "resolution", req.Choice)
	after, err := h.getConflict(ctx, v, id)
	if err != nil {
		// The write is committed: say so, even if the record has left
		// what the viewer sees (an administrator moved it meanwhile).
		c.Resolved, c.ResolvedAt, c.ResolvedBy, c.Resolution, c.CanResolve = true, now, v.Email, req.Choice, false
		return c, nil
	}
	return after, nil
}

// refusal turns a write's refusal (a *syncproto.Error from the checks a
// pushed change goes through) into a French message with the sync API's
// code; nil for any other error.
func refusal(err error) *userError {
	var pe *syncproto.Error
	if !errors.As(err, &pe) {
		return nil
	}
	switch pe.Code {
	case syncproto.CodeForbiddenScope:
		return &userError{status: fiber.StatusForbidden, code: pe.Code,
			msg: "Cette modification est refusée : vous ne pouvez pas écrire cette valeur sur cette fiche (elle ne vous est pas confiée, elle serait confiée à une autre personne, ou seuls les administrateurs la modifient)."}
	case syncproto.CodeInvalidRow:
		msg := "Cette valeur est refusée : elle ne respecte pas les règles de saisie."
		if name, _ := pe.Details[syncproto.DetailRule].(string); name != "" {
			if r, ok := domain.RuleByName(name); ok {
				msg = "Cette valeur est refusée : " + r.Message + "."
			}
		}
		return &userError{status: fiber.StatusBadRequest, code: pe.Code, msg: msg}
	case syncproto.CodeBadValue, syncproto.CodeBadChange, syncproto.CodeUnknownColumn, syncproto.CodeUnknownTable:
		return &userError{status: fiber.StatusBadRequest, code: pe.Code, msg: "Cette valeur ne convient pas à ce champ."}
	}
	return nil
}

// parseValue reads a value typed by a person (a form sends text) or sent
// as JSON into the column's storage type; empty text clears the field.
func (h *Handler) parseValue(table, column string, in any) (any, error) {
	ct, ok := h.d.Schema().ColumnType(table, column)
	if !ok {
		return nil, badRequest("Ce champ n'existe plus.")
	}
	if f, ok := in.(float64); ok { // JSON numbers
		if ct == syncproto.TypeInteger {
			if f != float64(int64(f)) {
				return nil, badRequest("Ce champ attend un nombre entier.")
			}
			return int64(f), nil
		}
		if ct == syncproto.TypeReal {
			return f, nil
		}
		in = strconv.FormatFloat(f, 'f', -1, 64)
	}
	if in == nil {
		return nil, nil
	}
	s, ok := in.(string)
	if !ok {
		return nil, badRequest("Valeur illisible.")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	switch ct {
	case syncproto.TypeInteger:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, badRequest("Ce champ attend un nombre entier.")
		}
		return n, nil
	case syncproto.TypeReal:
		f, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", "."), 64)
		if err != nil {
			return nil, badRequest("Ce champ attend un nombre.")
		}
		return f, nil
	}
	return s, nil
}

// --- pages ---------------------------------------------------------------

type conflictsView struct {
	State     string
	Conflicts []Conflict
}

func (h *Handler) conflictsPage(c *fiber.Ctx) error {
	state := c.Query("etat", "ouverts")
	f := ConflictFilter{State: map[string]string{"ouverts": "open", "resolus": "resolved", "tous": "all"}[state]}
	cs, err := h.listConflicts(c.UserContext(), viewer(c), f)
	if err != nil {
		return h.pageError(c, err)
	}
	return h.render(c, fiber.StatusOK, "conflits", pageData{Title: "Conflits", Nav: "conflits",
		Notice: noticeText(c.Query("ok")), Data: conflictsView{State: state, Conflicts: cs}})
}

func (h *Handler) conflictPage(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return h.errorPage(c, fiber.StatusNotFound, "Ce conflit n'existe pas ou ne vous est pas visible.")
	}
	cf, err := h.getConflict(c.UserContext(), viewer(c), id)
	if err != nil {
		return h.pageError(c, err)
	}
	return h.render(c, fiber.StatusOK, "conflit", pageData{Title: "Conflit n° " + strconv.FormatInt(id, 10), Nav: "conflits",
		Notice: noticeText(c.Query("ok")), Data: cf})
}

func (h *Handler) conflictResolveForm(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil {
		return h.errorPage(c, fiber.StatusNotFound, "Ce conflit n'existe pas ou ne vous est pas visible.")
	}
	req := ResolveRequest{Choice: c.FormValue("choix")}
	if req.Choice == ResolveOther {
		req.Value = c.FormValue("valeur")
	}
	cf, err := h.resolve(c.UserContext(), viewer(c), id, req)
	if err != nil {
		var ue *userError
		if errors.As(err, &ue) && (ue.status == fiber.StatusBadRequest || ue.status == fiber.StatusForbidden) && cf.ID != 0 {
			return h.render(c, ue.status, "conflit", pageData{Title: "Conflit n° " + strconv.FormatInt(id, 10),
				Nav: "conflits", Error: ue.msg, Data: cf})
		}
		return h.pageError(c, err)
	}
	return c.Redirect("/conflits/"+strconv.FormatInt(id, 10)+"?ok=resolu", fiber.StatusSeeOther)
}

func noticeText(code string) string {
	switch code {
	case "resolu":
		return "Le conflit est résolu. Chaque appareil recevra la valeur choisie à sa prochaine synchronisation."
	case "revoque":
		return "L'appareil est révoqué : il ne peut plus se synchroniser et effacera ses données à sa prochaine connexion."
	}
	return ""
}
