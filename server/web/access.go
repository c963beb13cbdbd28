package web

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/relais-numerique/relais/server/auth"
	syncscope "github.com/relais-numerique/relais/server/scope"
)

// Viewer is the person looking at the dashboard.
type Viewer struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Role   string `json:"role"`
	// Name is the person's name when an administrator gave one; the
	// header greets her by it rather than by her e-mail address.
	Name string `json:"name,omitempty"`
}

// Shown is how the dashboard names the viewer: her name, else her e-mail.
func (v Viewer) Shown() string {
	if v.Name != "" {
		return v.Name
	}
	return v.Email
}

// Admin reports whether the viewer sees everything.
func (v Viewer) Admin() bool { return v.Role == auth.RoleAdmin }

// who is the viewer as the sync scopes know a principal.
func (v Viewer) who() syncscope.Who { return syncscope.Who{UserID: v.UserID, Role: v.Role} }

// rules are the sync scopes' rules for the current schema.
func (h *Handler) rules() *syncscope.Rules { return syncscope.NewRules(h.d.Schema()) }

// Coordinator reports whether the viewer coordinates a team.
func (v Viewer) Coordinator() bool { return v.Role == auth.RoleCoordinateur }

// RoleLabel is the role in French.
func (v Viewer) RoleLabel() string {
	switch v.Role {
	case auth.RoleAdmin:
		return "Administrateur"
	case auth.RoleCoordinateur:
		return "Coordinateur"
	}
	return "Conseiller numérique"
}

// Member is a person whose data the viewer may see, and for which dates:
// a coordinator counts a médiateur's activities only while coordinating
// them (From and To are dates "2006-01-02"; empty means open).
type Member struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

// scope is what one viewer may see. It mirrors the server's sync scopes
// (package scope), so that the dashboard shows no more than a device of
// the same person would receive: the owner of a record is its
// mediateur_id, a user id.
type scope struct {
	all     bool
	self    string
	today   string   // "2006-01-02" in Paris, when the scope was read
	members []Member // the viewer first, then the team, for non-admins
	// view is the viewer's sync scope (nil for an administrator): what
	// their pull would deliver and which writes they may make, decided
	// by server/scope for the dashboard as for the devices.
	view *syncscope.View
}

// sees reports whether the viewer may see records owned by userID now.
func (s scope) sees(userID string) bool {
	if s.all {
		return true
	}
	for _, m := range s.members {
		if m.UserID == userID && (m.From == "" || m.From <= s.today) && (m.To == "" || m.To >= s.today) {
			return true
		}
	}
	return false
}

// userIDs lists the people whose records the viewer may see now.
func (s scope) userIDs() []string {
	var ids []string
	for _, m := range s.members {
		if s.sees(m.UserID) && !slices.Contains(ids, m.UserID) {
			ids = append(ids, m.UserID)
		}
	}
	return ids
}

// scopeOf computes what v may see. Administrators see everything; a
// coordinator sees themself and the médiateurs of their coordinations,
// as the sync scopes read them (server/scope); anyone else themself.
func (h *Handler) scopeOf(ctx context.Context, v Viewer) (scope, error) {
	s := scope{self: v.UserID, today: syncscope.Today(h.d.Now()),
		members: []Member{{UserID: v.UserID, Email: v.Email}}}
	if v.Admin() {
		s.all = true
		return s, nil
	}
	view, err := h.rules().Load(ctx, h.d.DB.R, v.who())
	if err != nil {
		return s, fmt.Errorf("read the team of %s: %w", v.UserID, err)
	}
	s.view = view
	if !v.Coordinator() {
		return s, nil
	}
	emails, err := h.userEmails(ctx)
	if err != nil {
		return s, err
	}
	var team []Member
	for id, periods := range view.Team() {
		for _, p := range periods {
			team = append(team, Member{UserID: id, Email: emails[id], From: p.From, To: p.To})
		}
	}
	sort.Slice(team, func(i, j int) bool {
		if team[i].Email != team[j].Email {
			return team[i].Email < team[j].Email
		}
		return team[i].From < team[j].From
	})
	s.members = append(s.members, team...)
	return s, nil
}

func dateOnly(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// Some fields are shown only to the conseiller who owns the row: those
// the sync scopes never send to a coordinator (PersonalColumns of package
// server/scope: a
// beneficiary's identifying fields, an activity's notes), and every field
// of the owned tables no coordinator receives at all (ownerOnlyTables:
// appointments carry home addresses; a coordinator's own activities are
// theirs).
var ownerOnlyTables = map[string]bool{"rendez_vous": true, "activite_coordination": true}

// isPersonal reports whether table.column is shown to its owner only.
func isPersonal(table, column string) bool {
	return ownerOnlyTables[table] || slices.Contains(syncscope.PersonalColumns(table), column)
}

// userNames maps every account's id to the name people read: the name
// given to the account, or its e-mail when it has none.
func (h *Handler) userNames(ctx context.Context) (map[string]string, error) {
	rows, err := h.d.DB.R.QueryContext(ctx, "SELECT id, COALESCE(NULLIF(name, ''), email) FROM _users")
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("read accounts: %w", err)
		}
		out[id] = name
	}
	return out, rows.Err()
}

// userEmails maps every account's id to its e-mail, to name authors.
func (h *Handler) userEmails(ctx context.Context) (map[string]string, error) {
	rows, err := h.d.DB.R.QueryContext(ctx, "SELECT id, email FROM _users")
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, email string
		if err := rows.Scan(&id, &email); err != nil {
			return nil, fmt.Errorf("read accounts: %w", err)
		}
		out[id] = email
	}
	return out, rows.Err()
}
