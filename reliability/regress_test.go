package reliability

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// A beneficiary is erased on the server while a conseillère's tablet,
// offline, adds notes about them. Her batch is refused (an anonymous
// beneficiary keeps no notes); after her next sync her tablet must hold
// what the server holds: no notes, no name.
func TestRefusedWriteDoesNotLingerAfterErasure(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "a@relais.test", "admin", "mot-de-passe-a")
		a := srv.LoggedInDevice(t, "a", "a@relais.test", "mot-de-passe-a")
		b := srv.LoggedInDevice(t, "b", "a@relais.test", "mot-de-passe-a")
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := a.DB().ExecContext(ctx, "INSERT INTO beneficiaire (id, prenom, nom, notes) VALUES (?, 'Jeanne', 'Martin', 'première visite')", id); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := srv.EraseBeneficiaire(ctx, id); err != nil {
			t.Fatal(err)
		}
		// b, offline, writes after the erasure.
		if _, err := b.DB().ExecContext(ctx, "UPDATE beneficiaire SET notes = 'rappeler mardi' WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
		rep, err := b.Sync(ctx)
		t.Logf("b's first sync: %+v, %v", rep, err)
		for i := 0; i < 3; i++ {
			rep, err = b.Sync(ctx)
			t.Logf("b's sync: %+v, %v", rep, err)
		}
		_, want := dumpDB(t, srv.DB().R)
		_, got := dumpDB(t, b.DB())
		if got != want {
			t.Errorf("b differs from the server after its refused write: %s", relaistest.FirstDiff(want, got))
		}
		var notes, prenom any
		if err := b.DB().QueryRowContext(ctx, "SELECT notes, prenom FROM beneficiaire WHERE id = ?", id).Scan(&notes, &prenom); err != nil {
			t.Fatal(err)
		}
		if notes != nil || prenom != nil {
			t.Errorf("erased beneficiary still has notes %v and first name %v on b", notes, prenom)
		}
	})
}

// The same refusal on columns no erasure scrubs: a conseillère details
// the administrative procedure of an activity while, concurrently, a
// colleague removes the "aide aux démarches" theme it requires. Her batch
// is refused; her tablet must drop the refused detail and converge.
func TestRefusedWriteIsUndoneLocally(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "a@relais.test", "admin", "mot-de-passe-a")
		a := srv.LoggedInDevice(t, "a", "a@relais.test", "mot-de-passe-a")
		b := srv.LoggedInDevice(t, "b", "a@relais.test", "mot-de-passe-a")
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := a.DB().ExecContext(ctx, `INSERT INTO activite (id, duree, thematiques) VALUES (?, 30, '["email","aide_aux_demarches_administratives"]')`, id); err != nil {
			t.Fatal(err)
		}
		refuseConcurrentEdit(t, a, b, id)
		if _, err := b.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		_, want := dumpDB(t, srv.DB().R)
		if _, got := dumpDB(t, b.DB()); got != want {
			t.Errorf("b differs from the server after its refused write: %s", relaistest.FirstDiff(want, got))
		}
		var them, prec any
		if err := b.DB().QueryRowContext(ctx, "SELECT thematiques, precisions_demarche FROM activite WHERE id = ?", id).Scan(&them, &prec); err != nil {
			t.Fatal(err)
		}
		if prec != nil {
			t.Errorf("b still shows the refused detail %q (themes %s)", prec, them)
		}
		st, err := b.Status(ctx)
		if err != nil || st.Rejected != 1 {
			t.Errorf("the refused change is not kept aside for the conseillère: %+v, %v", st, err)
		}
	})
}

// Found by the simulation (seed 18 with beneficiaries deleted): a
// beneficiary is erased by the server, then deleted by one device, while
// another device, offline, writes a name to it. No rule judges a deleted
// row, so the server kept the name in its cell store and sent it on,
// while devices scrubbed it at the same version and differed. The server
// must clear it, and every replica end equal, without the name.
func TestNameWrittenToErasedDeletedBeneficiary(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "a@relais.test", "admin", "mot-de-passe-a")
		a := srv.LoggedInDevice(t, "a", "a@relais.test", "mot-de-passe-a")
		b := srv.LoggedInDevice(t, "b", "a@relais.test", "mot-de-passe-a")
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := a.DB().ExecContext(ctx, "INSERT INTO beneficiaire (id, prenom, nom) VALUES (?, 'Jeanne', 'Martin')", id); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*device.Replica{a, b} {
			if _, err := r.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.DB().ExecContext(ctx, "DELETE FROM beneficiaire WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
		if err := srv.EraseBeneficiaire(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := b.DB().ExecContext(ctx, "UPDATE beneficiaire SET nom = 'Dupont' WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
		for round := 0; round < 3; round++ {
			for _, r := range []*device.Replica{a, b} {
				if _, err := r.Sync(ctx); err != nil {
					t.Logf("sync: %v", err)
				}
			}
		}
		sameAsServer(t, srv, map[string]*device.Replica{"a": a, "b": b})
		n := relaistest.CountCells(t, srv.DB().R, func(c relaistest.Cell) bool {
			return c.Table == "beneficiaire" && c.PK == id && (c.Column == "prenom" || c.Column == "nom") && c.Value != nil
		})
		if n != 0 {
			t.Errorf("the server keeps %d personal values of the erased beneficiary", n)
		}
	})
}

// recorder is an http.RoundTripper that keeps a copy of every request it
// sends, so a test can replay one later, as a flaky network might.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	url    string
	header http.Header
	body   []byte
}

func (rc *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, recorded{req.URL.String(), req.Header.Clone(), body})
	rc.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

func (rc *recorder) last() recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.reqs[len(rc.reqs)-1]
}

func (r recorded) replay(t *testing.T) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = r.header.Clone()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// A batch in which the server refused a row is replayed later by the
// network, once the rule the row broke holds again. The refusal must
// stand (the device has set the row aside and put the server's version
// back): a replay gets the first answer, acknowledgement and refusal, as
// any replayed batch does, and nothing changes.
func TestReplayedRefusedBatchStaysRefused(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "a@relais.test", "admin", "mot-de-passe-a")
		a := srv.LoggedInDevice(t, "a", "a@relais.test", "mot-de-passe-a")
		rec := &recorder{}
		b := relaistest.OpenDevice(t, "b", device.Options{HTTPClient: &http.Client{Transport: rec}})
		if err := b.Login(ctx, srv.URL, "a@relais.test", "mot-de-passe-a"); err != nil {
			t.Fatal(err)
		}
		id := uuid.Must(uuid.NewV7()).String()
		withTheme := `UPDATE activite SET thematiques = '["email","aide_aux_demarches_administratives"]' WHERE id = ?`
		if _, err := a.DB().ExecContext(ctx, `INSERT INTO activite (id, duree) VALUES (?, 30)`, id); err != nil {
			t.Fatal(err)
		}
		if _, err := a.DB().ExecContext(ctx, withTheme, id); err != nil {
			t.Fatal(err)
		}
		refuseConcurrentEdit(t, a, b, id)
		refused := rec.last()
		// The theme comes back; then the network delivers b's old request.
		if _, err := a.DB().ExecContext(ctx, withTheme, id); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		status := refused.replay(t)
		for round := 0; round < 2; round++ {
			for _, r := range []*device.Replica{a, b} {
				if _, err := r.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		_, want := dumpDB(t, srv.DB().R)
		for name, r := range map[string]*device.Replica{"a": a, "b": b} {
			if _, got := dumpDB(t, r.DB()); got != want {
				t.Errorf("%s differs from the server after the replay (answered %d): %s", name, status, relaistest.FirstDiff(want, got))
			}
		}
		var prec any
		if err := srv.DB().R.QueryRowContext(ctx, "SELECT precisions_demarche FROM activite WHERE id = ?", id).Scan(&prec); err != nil {
			t.Fatal(err)
		}
		if prec != nil || status != http.StatusOK {
			t.Errorf("the replayed refused batch was answered %d and the server now holds %v", status, prec)
		}
	})
}

// A tablet three minutes ahead of a one-minute bound writes; its batch is
// refused (clock_ahead). Its date is set right: it stamps its pending
// writes again and pushes them, then writes again. Later, once the
// server's time has passed the old stamps, the network replays the first
// request. The old stamps must not win over the newer writes, and every
// replica must end equal.
func TestReplayedClockAheadBatchAfterRestamp(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		var shift atomic.Int64
		now := func() time.Time { return time.Now().Add(time.Duration(shift.Load())) }
		srv := e.Start(t, server.Config{MaxClockAhead: time.Minute, Now: now})
		srv.AddUser(t, "a@relais.test", "admin", "mot-de-passe-a")
		a := srv.LoggedInDevice(t, "a", "a@relais.test", "mot-de-passe-a")
		rec := &recorder{}
		path := filepath.Join(t.TempDir(), "b.db")
		b, err := device.Open(ctx, path, device.Options{HTTPClient: &http.Client{Transport: rec}, ClockSkew: 3 * time.Minute, RetryFor: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Login(ctx, srv.URL, "a@relais.test", "mot-de-passe-a"); err != nil {
			t.Fatal(err)
		}
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := b.DB().ExecContext(ctx, "INSERT INTO activite (id, duree) VALUES (?, 30)", id); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Sync(ctx); syncproto.CodeOf(err) != syncproto.CodeClockAhead {
			t.Fatalf("a write three minutes ahead was not refused: %v", err)
		}
		early := rec.last()
		b.Close()
		if b, err = device.Open(ctx, path, device.Options{HTTPClient: &http.Client{Transport: rec}, RetryFor: time.Second}); err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if rep, err := b.Sync(ctx); err != nil || !rep.Restamped {
			t.Fatalf("after the date is set right: %+v, %v", rep, err)
		}
		if _, err := b.DB().ExecContext(ctx, "UPDATE activite SET duree = 60 WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		shift.Store(int64(4 * time.Minute))
		status := early.replay(t)
		for round := 0; round < 2; round++ {
			for _, r := range []*device.Replica{a, b} {
				if _, err := r.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		var duree int
		if err := srv.DB().R.QueryRowContext(ctx, "SELECT duree FROM activite WHERE id = ?", id).Scan(&duree); err != nil {
			t.Fatal(err)
		}
		if duree != 60 {
			t.Errorf("the replayed request (answered %d) brought back duree %d over the newer 60", status, duree)
		}
		sameAsServer(t, srv, map[string]*device.Replica{"a": a, "b": b})
	})
}

// Found by the simulation (seed 500830): a tablet whose clock ran beyond
// the bound edits a cell it had received; once its date is set right,
// its pending writes are stamped again, and the new stamp fell below the
// version the edit overwrote (a colleague's, stamped a little ahead). The
// merge then kept the colleague's value without a conflict, since the
// edit's prev matched, and the tablet kept its own: a silent loss and a
// divergence. The edit must win, everywhere.
func TestRestampedWriteStaysAboveWhatItOverwrote(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{MaxClockAhead: time.Minute})
		srv.AddUser(t, "a@relais.test", "admin", "mot-de-passe-a")
		open := func(name string, skew time.Duration) *device.Replica {
			r := relaistest.OpenDevice(t, name, device.Options{ClockSkew: skew, RetryFor: time.Second})
			if err := r.Login(ctx, srv.URL, "a@relais.test", "mot-de-passe-a"); err != nil {
				t.Fatal(err)
			}
			return r
		}
		a := open("a", 30*time.Second) // a little ahead, within the bound
		b := open("b", 3*time.Minute)  // beyond it
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := a.DB().ExecContext(ctx, "INSERT INTO activite (id, duree) VALUES (?, 30)", id); err != nil {
			t.Fatal(err)
		}
		if _, err := a.DB().ExecContext(ctx, "UPDATE activite SET commune = 'Laval' WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Sync(ctx); err != nil { // a pull alone is not refused
			t.Fatal(err)
		}
		if _, err := b.DB().ExecContext(ctx, "UPDATE activite SET commune = 'Mayenne' WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Sync(ctx); syncproto.CodeOf(err) != syncproto.CodeClockAhead {
			t.Fatalf("b's write three minutes ahead was not refused: %v", err)
		}
		path := b.Path()
		b.Close()
		b, err := device.Open(ctx, path, device.Options{RetryFor: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if rep, err := b.Sync(ctx); err != nil || !rep.Restamped {
			t.Fatalf("after the date is set right: %+v, %v", rep, err)
		}
		if _, err := a.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		var commune string
		if err := srv.DB().R.QueryRowContext(ctx, "SELECT commune FROM activite WHERE id = ?", id).Scan(&commune); err != nil {
			t.Fatal(err)
		}
		if commune != "Mayenne" {
			t.Errorf("the server kept %q over b's later edit", commune)
		}
		sameAsServer(t, srv, map[string]*device.Replica{"a": a, "b": b})
	})
}

// The path behind campaign 6's seed 600150: a beneficiary is erased from
// a device, then again by the server, then another device deletes and
// re-creates the row under the same id (a new, identified record). Every
// replica must end equal, with the re-created record.
func TestErasedTwiceThenRecreated(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		ctx := context.Background()
		srv := e.Start(t, server.Config{})
		srv.AddUser(t, "a@relais.test", "admin", "mot-de-passe-a")
		a := srv.LoggedInDevice(t, "a", "a@relais.test", "mot-de-passe-a")
		b := srv.LoggedInDevice(t, "b", "a@relais.test", "mot-de-passe-a")
		all := []*device.Replica{a, b}
		syncAll := func() {
			t.Helper()
			for _, r := range all {
				if _, err := r.Sync(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := a.DB().ExecContext(ctx, "INSERT INTO beneficiaire (id, prenom, nom) VALUES (?, 'Jeanne', 'Martin')", id); err != nil {
			t.Fatal(err)
		}
		syncAll()
		if err := domain.EraseOnDevice(ctx, a.DB(), id); err != nil {
			t.Fatal(err)
		}
		syncAll()
		if err := srv.EraseBeneficiaire(ctx, id); err != nil {
			t.Fatal(err)
		}
		syncAll()
		if _, err := b.DB().ExecContext(ctx, "DELETE FROM beneficiaire WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
		if _, err := b.DB().ExecContext(ctx, "INSERT INTO beneficiaire (id, prenom, nom) VALUES (?, 'Paul', 'Durand')", id); err != nil {
			t.Fatal(err)
		}
		syncAll()
		syncAll()
		var prenom string
		var anonyme any
		if err := srv.DB().R.QueryRowContext(ctx, "SELECT prenom, anonyme FROM beneficiaire WHERE id = ?", id).Scan(&prenom, &anonyme); err != nil {
			t.Fatal(err)
		}
		if prenom != "Paul" || anonyme != nil {
			t.Errorf("the re-created record is %q, anonyme %v", prenom, anonyme)
		}
		sameAsServer(t, srv, map[string]*device.Replica{"a": a, "b": b})
	})
}

// refuseConcurrentEdit makes b's edit of activity id refused by a rule:
// both devices hold the activity with the administrative theme; a drops
// the theme and syncs; b, unaware, fills precisions_demarche, which is
// allowed only with that theme, and its batch is refused.
func refuseConcurrentEdit(t *testing.T, a, b *device.Replica, id string) {
	t.Helper()
	ctx := context.Background()
	for _, r := range []*device.Replica{a, b} {
		if _, err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.DB().ExecContext(ctx, `UPDATE activite SET thematiques = '["email"]' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB().ExecContext(ctx, `UPDATE activite SET precisions_demarche = 'dossier CAF' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	// The refusal is reported, and the sync itself goes on.
	if rep, err := b.Sync(ctx); err != nil || rep.Rejected != 1 {
		t.Fatalf("b's write was not refused alone: %+v, %v", rep, err)
	}
}

// sameAsServer checks that every device holds exactly the server's data.
func sameAsServer(t *testing.T, srv *relaistest.Server, devices map[string]*device.Replica) {
	t.Helper()
	_, want := dumpDB(t, srv.DB().R)
	for name, r := range devices {
		if _, got := dumpDB(t, r.DB()); got != want {
			t.Errorf("%s differs from the server: %s", name, relaistest.FirstDiff(want, got))
		}
	}
}
