package domain

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/relais-numerique/relais/syncproto"
)

// ErasureValues are the cells an erasure writes on a beneficiary: every
// personal column cleared and anonyme set. Genre, age bracket, social
// status, commune and birth year stay, as in the Coop: statistics keep
// counting the accompaniment without knowing who it was.
func ErasureValues() map[string]any {
	v := map[string]any{"anonyme": int64(1)}
	for _, c := range PersonalColumns {
		v[c] = nil
	}
	return v
}

// Execer is what EraseOnDevice writes through: a device's database or a
// transaction on it.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// EraseStatements are the UPDATEs that anonymise a beneficiary from a
// device, each taking the beneficiary's id as its one parameter: every
// personal column cleared and anonyme set, then the addresses of its
// appointments. Plain SQL, so the browser app runs the same text
// (app.Spec) as EraseOnDevice.
func EraseStatements() []string {
	set := make([]string, len(PersonalColumns))
	for i, c := range PersonalColumns {
		set[i] = quoteIdent(c) + " = NULL"
	}
	return []string{
		"UPDATE beneficiaire SET anonyme = 1, " + strings.Join(set, ", ") + " WHERE id = ?",
		"UPDATE rendez_vous SET adresse = NULL WHERE beneficiaire_id = ? AND adresse IS NOT NULL",
	}
}

// EraseOnDevice anonymises a beneficiary from a device with ordinary
// UPDATEs (EraseStatements), so the capture triggers send the erasure to
// the server and from there to every replica.
func EraseOnDevice(ctx context.Context, db Execer, id string) error {
	stmts := EraseStatements()
	res, err := db.ExecContext(ctx, stmts[0], id)
	if err != nil {
		return fmt.Errorf("erase beneficiaire %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("erase beneficiaire %s: no such beneficiary on this device", id)
	}
	if _, err := db.ExecContext(ctx, stmts[1], id); err != nil {
		return fmt.Errorf("erase beneficiaire %s: appointments: %w", id, err)
	}
	return nil
}

// Erases says whether changes erase the beneficiary pk: set its anonyme
// cell to 1. Both sides ask it: the server to complete an erasure that
// came in a refused row, a device to empty its write-ahead log once an
// erasure is applied or sent.
func Erases(changes []syncproto.Change, pk string) bool {
	for _, c := range changes {
		if c.Table == "beneficiaire" && c.Column == "anonyme" && (pk == "" || c.PK == pk) && isOne(c.Value) {
			return true
		}
	}
	return false
}

// ErasesAny says whether changes erase any beneficiary.
func ErasesAny(changes []syncproto.Change) bool { return Erases(changes, "") }

// isOne reads 1 in the forms a decoded or locally built value takes.
func isOne(v any) bool {
	switch v := v.(type) {
	case int64:
		return v == 1
	case int:
		return v == 1
	case float64:
		return v == 1
	case json.Number:
		return v.String() == "1"
	}
	return false
}
