package device_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
)

const rowID = "0192f1a0-0000-7000-8000-000000000001"

// outbox lists the pending changes of rowID as "col=val", sorted.
func outbox(t *testing.T, r *device.Replica) string {
	t.Helper()
	pending, err := r.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range pending {
		if c.PK == rowID {
			out = append(out, fmt.Sprintf("%s=%v", c.Column, c.Value))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// Plain SQL on a synced table is captured cell by cell, with no special
// API; what the application did not change is not sent.
func TestCaptureTriggers(t *testing.T) {
	tests := []struct {
		name  string
		setup []string // run, then the outbox is marked as sent
		stmt  string
		want  string
	}{
		{"insert sends the columns set", nil,
			"INSERT INTO activite (id, type, duree) VALUES ('" + rowID + "', 'individuel', 30)",
			"duree=30 type=individuel"},
		{"update sends only what changed", []string{"INSERT INTO activite (id, type, duree) VALUES ('" + rowID + "', 'individuel', 30)"},
			"UPDATE activite SET type = 'individuel', duree = 45 WHERE id = '" + rowID + "'",
			"duree=45"},
		{"update to the same value sends nothing", []string{"INSERT INTO activite (id, duree) VALUES ('" + rowID + "', 30)"},
			"UPDATE activite SET duree = 30 WHERE id = '" + rowID + "'",
			""},
		{"setting NULL is a write", []string{"INSERT INTO activite (id, notes) VALUES ('" + rowID + "', 'x')"},
			"UPDATE activite SET notes = NULL WHERE id = '" + rowID + "'",
			"notes=<nil>"},
		{"delete writes the tombstone", []string{"INSERT INTO activite (id, duree) VALUES ('" + rowID + "', 30)"},
			"DELETE FROM activite WHERE id = '" + rowID + "'",
			"_deleted=1"},
		{"insert after delete re-creates explicitly", []string{
			"INSERT INTO activite (id, duree) VALUES ('" + rowID + "', 30)",
			"DELETE FROM activite WHERE id = '" + rowID + "'"},
			"INSERT INTO activite (id, duree) VALUES ('" + rowID + "', 30)",
			"_deleted=0"},
		// INSERT OR REPLACE fires no DELETE trigger (recursive_triggers is
		// off), so it is captured as an insert compared with the cells
		// held: changed columns and columns it cleared.
		{"insert or replace sends changes and cleared columns", []string{"INSERT INTO activite (id, type, duree) VALUES ('" + rowID + "', 'individuel', 30)"},
			"INSERT OR REPLACE INTO activite (id, duree) VALUES ('" + rowID + "', 60)",
			"duree=60 type=<nil>"},
		{"upsert is an update", []string{"INSERT INTO activite (id, type, duree) VALUES ('" + rowID + "', 'individuel', 30)"},
			"INSERT INTO activite (id, duree) VALUES ('" + rowID + "', 90) ON CONFLICT (id) DO UPDATE SET duree = excluded.duree",
			"duree=90"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := relaistest.OpenDevice(t, "d", device.Options{})
			for _, s := range tt.setup {
				exec(t, r, s)
			}
			// What the setup wrote is taken as sent and acknowledged.
			exec(t, r, "DELETE FROM _outbox")
			exec(t, r, tt.stmt)
			got := outbox(t, r)
			if got != tt.want {
				t.Fatalf("outbox %q, want %q", got, tt.want)
			}
		})
	}
}

// The owner's UPDATEs have triggers of their own (UPDATE OF the owner,
// so that an INSERT does not compile in the table's full UPDATE
// triggers with its owner fill): whichever columns an UPDATE sets,
// each change is captured once and the owner's checks still hold.
func TestOwnerWritesAreCapturedAndChecked(t *testing.T) {
	const (
		me      = "0192f1a0-0000-7000-8000-0000000000aa"
		someone = "0192f1a0-0000-7000-8000-0000000000bb"
		theirs  = "0192f1a0-0000-7000-8000-000000000002"
	)
	r := relaistest.OpenDevice(t, "d", device.Options{})
	// A row written before the device knew its account has no owner.
	exec(t, r, "INSERT INTO activite (id, duree) VALUES ('"+rowID+"', 30)")
	exec(t, r, "UPDATE _device SET user_id = ?, role = 'conseiller' WHERE id = 1", me)
	// A row of someone else, as a pull merges it.
	exec(t, r, "UPDATE _replica SET applying = 1 WHERE id = 1")
	exec(t, r, "INSERT INTO activite (id, mediateur_id, duree) VALUES (?, ?, 60)", theirs, someone)
	exec(t, r, "UPDATE _replica SET applying = 0 WHERE id = 1")
	exec(t, r, "DELETE FROM _outbox")

	for _, tc := range []struct{ stmt, want string }{
		{"UPDATE activite SET mediateur_id = '" + me + "' WHERE id = '" + rowID + "'", "mediateur_id=" + me},
		{"UPDATE activite SET duree = 45 WHERE id = '" + rowID + "'", "duree=45 mediateur_id=" + me},
		{"UPDATE activite SET duree = 50, mediateur_id = '" + me + "' WHERE id = '" + rowID + "'", "duree=50 mediateur_id=" + me},
	} {
		exec(t, r, tc.stmt)
		if got := outbox(t, r); got != tc.want {
			t.Fatalf("after %s: outbox %q, want %q", tc.stmt, got, tc.want)
		}
	}
	for _, tc := range []struct{ stmt, want string }{
		{"UPDATE activite SET mediateur_id = '" + someone + "' WHERE id = '" + rowID + "'", "relais: une fiche ne peut pas être attribuée"},
		{"UPDATE activite SET mediateur_id = NULL, duree = 20 WHERE id = '" + rowID + "'", "relais: une fiche ne peut pas être attribuée"},
		{"UPDATE activite SET mediateur_id = '" + me + "' WHERE id = '" + theirs + "'", "relais: cette fiche appartient à une autre personne"},
		{"UPDATE activite SET duree = 90 WHERE id = '" + theirs + "'", "relais: cette fiche appartient à une autre personne"},
	} {
		if _, err := r.DB().Exec(tc.stmt); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.stmt, err, tc.want)
		}
	}
	if got := outbox(t, r); got != "duree=50 mediateur_id="+me {
		t.Fatalf("refused writes changed the outbox: %q", got)
	}
	// A new row that names no owner is given hers, and the fill travels.
	exec(t, r, "DELETE FROM activite WHERE id = ?", rowID)
	exec(t, r, "DELETE FROM _outbox")
	exec(t, r, "DELETE FROM _rows")
	exec(t, r, "INSERT INTO activite (id, duree) VALUES (?, 30)", rowID)
	if got := outbox(t, r); got != "duree=30 mediateur_id="+me {
		t.Fatalf("a new row's outbox %q, want its owner filled and sent", got)
	}
}

// Two edits of one cell before a sync travel as one change, whose prev is
// the version the server last gave (none here), so the server sees a
// succession and not a conflict; the row's writes share one entry.
func TestOutboxFoldsEditsOfOneCell(t *testing.T) {
	r := relaistest.OpenDevice(t, "d", device.Options{})
	exec(t, r, "INSERT INTO activite (id, duree) VALUES ('"+rowID+"', 30)")
	exec(t, r, "UPDATE activite SET duree = 45 WHERE id = '"+rowID+"'")
	exec(t, r, "UPDATE activite SET duree = 60 WHERE id = '"+rowID+"'")
	var n int
	if err := r.DB().QueryRow("SELECT COUNT(*) FROM _outbox WHERE pk = ?", rowID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	pending, err := r.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || len(pending) != 1 || pending[0].Prev.HLC != 0 || pending[0].Prev.Node != "" {
		t.Fatalf("%d entries, changes %+v; want one entry, one change whose prev is the absent version", n, pending)
	}
	if got := outbox(t, r); got != "duree=60" {
		t.Fatalf("outbox %q", got)
	}
}

// Writes the server would refuse are refused when the application makes
// them, with a message that says why.
func TestWriteTimeChecks(t *testing.T) {
	r := relaistest.OpenDevice(t, "d", device.Options{})
	for _, tt := range []struct{ stmt, want string }{
		{"INSERT INTO activite (id) VALUES ('42')", "must be a UUID"},
		{"INSERT INTO activite (id, duree) VALUES ('" + rowID + "', 'trente')", "duree"},
		{"INSERT INTO structure (id, latitude) VALUES ('" + rowID + "', 'nord')", "structure.latitude must be real"},
	} {
		_, err := r.DB().ExecContext(context.Background(), tt.stmt)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.stmt, err, tt.want)
		}
	}
	exec(t, r, "INSERT INTO activite (id, duree) VALUES ('"+rowID+"', 30)")
	if _, err := r.DB().Exec("UPDATE activite SET id = '0192f1a0-0000-7000-8000-000000000002'"); err == nil || !strings.Contains(err.Error(), "cannot change") {
		t.Errorf("changing an id: %v", err)
	}
}

func exec(t *testing.T, r *device.Replica, q string, args ...any) {
	t.Helper()
	if _, err := r.DB().Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
