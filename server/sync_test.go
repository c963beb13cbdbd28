package server_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

const password = "mot-de-passe-de-test"

// tableDump is a canonical text of the synced tables of a database.
func tableDump(t *testing.T, db *sql.DB) string {
	t.Helper()
	return relaistest.Dump(t, db,
		"SELECT id, mediateur_id, type, date, duree, type_lieu, structure_id, commune, code_insee, autonomie, notes FROM activite ORDER BY id",
		"SELECT id, nom, commune FROM structure ORDER BY id")
}

func exec(t *testing.T, r *device.Replica, q string, args ...any) {
	t.Helper()
	if _, err := r.DB().Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func mustSync(t *testing.T, r *device.Replica) device.Report {
	t.Helper()
	rep, err := r.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync %s: %v", r.Node(), err)
	}
	return rep
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// Two devices work offline on the same rows (same cell, different cells
// of one row, delete against edit), then sync in either order: both
// devices and the server end with the same tables, and the concurrent
// write that lost is in the server's conflict log.
func TestTwoDevicesConverge(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		for _, order := range []string{"AB", "BA"} {
			t.Run("sync order "+order, func(t *testing.T) {
				tt := e.StartTwoTablets(t, server.Config{}, "camille@exemple.fr", "admin")
				srv, a, b := tt.Server, tt.A, tt.B

				row, doomed := newID(), newID()
				exec(t, a, "INSERT INTO activite (id, type, duree, notes, commune) VALUES (?, 'individuel', 30, 'premier rendez-vous', 'Laval')", row)
				exec(t, a, "INSERT INTO activite (id, type, duree) VALUES (?, 'collectif', 120)", doomed)
				mustSync(t, a)
				mustSync(t, b)

				// Offline on both sides. A writes first, B later, so B's
				// writes carry the newer clock readings.
				exec(t, a, "UPDATE activite SET duree = 60, notes = 'notes de A' WHERE id = ?", row)
				exec(t, a, "DELETE FROM activite WHERE id = ?", doomed)
				exec(t, b, "UPDATE activite SET duree = 90, commune = 'Mayenne' WHERE id = ?", row)
				exec(t, b, "UPDATE activite SET duree = 150 WHERE id = ?", doomed)

				devs := map[byte]*device.Replica{'A': a, 'B': b}
				for _, c := range []byte(order + order) {
					mustSync(t, devs[c])
				}

				want := tableDump(t, srv.DB().R)
				for name, r := range map[string]*device.Replica{"A": a, "B": b} {
					if got := tableDump(t, r.DB()); got != want {
						t.Fatalf("device %s differs from the server:\nserver:\n%s\ndevice:\n%s", name, want, got)
					}
				}
				var duree int
				var notes, commune string
				if err := srv.DB().R.QueryRow("SELECT duree, notes, commune FROM activite WHERE id = ?", row).Scan(&duree, &notes, &commune); err != nil {
					t.Fatal(err)
				}
				if duree != 90 || notes != "notes de A" || commune != "Mayenne" {
					t.Fatalf("merged row: duree %d, notes %q, commune %q; want B's duree, A's notes, B's commune", duree, notes, commune)
				}
				// The delete was earlier than B's edit of another cell: the
				// edit does not resurrect the row.
				var n int
				if err := srv.DB().R.QueryRow("SELECT COUNT(*) FROM activite WHERE id = ?", doomed).Scan(&n); err != nil || n != 0 {
					t.Fatalf("deleted row present %d times (%v)", n, err)
				}
				var loser, winner int
				var loserNode string
				err := srv.DB().R.QueryRow("SELECT loser_val, winner_val, loser_node FROM _conflicts WHERE pk = ? AND col = 'duree'", row).Scan(&loser, &winner, &loserNode)
				if err != nil {
					t.Fatalf("conflict on duree not recorded: %v", err)
				}
				if loser != 60 || winner != 90 || loserNode != a.Node() {
					t.Fatalf("conflict recorded as loser %d by %s, winner %d", loser, loserNode, winner)
				}
				var total int
				if err := srv.DB().R.QueryRow("SELECT COUNT(*) FROM _conflicts").Scan(&total); err != nil || total != 1 {
					t.Fatalf("%d conflicts recorded, want exactly the one on duree (%v)", total, err)
				}
			})
		}
	})
}

// flakyTransport forwards requests to the real server and can lose the
// answer after the server has handled the request, as a 2G link does.
type flakyTransport struct {
	loseAnswers atomic.Int32 // answers still to lose
	failFrom    atomic.Int32 // fail requests once this many got through (0: never)
	seen        atomic.Int32
}

func (f *flakyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	n := f.seen.Add(1)
	if from := f.failFrom.Load(); from > 0 && n > from {
		return nil, errors.New("link cut")
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if f.loseAnswers.Add(-1) >= 0 {
		res.Body.Close()
		return nil, errors.New("answer lost")
	}
	return res, nil
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// A batch whose answer was lost is re-sent identical; the server
// acknowledges it again and applies it once.
func TestBatchResentAfterLostAnswer(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "camille@exemple.fr", "admin", password)
		tr := &flakyTransport{}
		a := relaistest.OpenDevice(t, "a", device.Options{HTTPClient: &http.Client{Transport: tr}})
		if err := a.Login(ctx, srv.URL, "camille@exemple.fr", password); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			exec(t, a, "INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', ?)", newID(), 15*(i+1))
		}
		tr.loseAnswers.Store(1)
		rep := mustSync(t, a)
		if tr.seen.Load() < 3 { // login, the lost exchange, its retry
			t.Fatalf("the exchange was not retried (%d requests)", tr.seen.Load())
		}
		if rep.Pushed != 10 {
			t.Fatalf("pushed %d changes, want 10", rep.Pushed)
		}
		db := srv.DB().R
		if n := count(t, db, "SELECT COUNT(*) FROM _batches"); n != 1 {
			t.Fatalf("%d batches recorded, want 1", n)
		}
		if n := relaistest.CountCells(t, db, nil); n != 10 {
			t.Fatalf("%d cells, want 10", n)
		}
		// Rows are numbered for pulls, one number per row changed.
		if n := count(t, db, "SELECT seq FROM _replica"); n != 5 {
			t.Fatalf("sequence at %d, want 5: a row was applied twice", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM _conflicts"); n != 0 {
			t.Fatalf("%d conflicts recorded by a replay", n)
		}
		if n := count(t, a.DB(), "SELECT COUNT(*) FROM _outbox"); n != 0 {
			t.Fatalf("%d entries left in the outbox", n)
		}
	})
}

// A pull cut after its first page resumes at the second page: nothing is
// downloaded twice and nothing is lost.
func TestPullResumesAfterCut(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "camille@exemple.fr", "admin", password)
		writer := srv.LoggedInDevice(t, "writer", "camille@exemple.fr", password)
		for i := 0; i < 30; i++ {
			exec(t, writer, "INSERT INTO structure (id, nom, commune) VALUES (?, ?, 'Laval')", newID(), fmt.Sprintf("Structure %02d", i))
		}
		mustSync(t, writer) // 60 cells on the server

		tr := &flakyTransport{}
		r := relaistest.OpenDevice(t, "reader", device.Options{HTTPClient: &http.Client{Transport: tr}, PageLimit: 25, RetryFor: 1})
		if err := r.Login(ctx, srv.URL, "camille@exemple.fr", password); err != nil {
			t.Fatal(err)
		}
		tr.failFrom.Store(2) // the login and the first page get through
		rep, err := r.Sync(ctx)
		if err == nil {
			t.Fatal("sync over a cut link reported success")
		}
		// A page ends with the row that reaches the limit (rows travel
		// whole): 13 rows of 2 cells.
		if rep.Pulled != 26 {
			t.Fatalf("first page brought %d cells, want 26", rep.Pulled)
		}
		st, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Cursor != 13 || st.LastError == "" {
			t.Fatalf("after the cut: cursor %d, last error %q", st.Cursor, st.LastError)
		}
		firstPage := relaistest.CountCells(t, r.DB(), nil)
		if firstPage != 26 {
			t.Fatalf("%d cells kept from the first page, want 26", firstPage)
		}

		tr.failFrom.Store(0)
		rep = mustSync(t, r)
		if rep.Pulled != 34 {
			t.Fatalf("resumed pull brought %d cells, want the 34 not yet received", rep.Pulled)
		}
		if got, want := tableDump(t, r.DB()), tableDump(t, srv.DB().R); got != want {
			t.Fatalf("reader differs from server:\n%s\nvs\n%s", got, want)
		}
	})
}
