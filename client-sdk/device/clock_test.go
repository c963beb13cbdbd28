package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// A tablet whose date was a month ahead writes offline; the server
// refuses its changes. Once the date is corrected, the next sync goes
// through, and the writes it carries no longer win every conflict.
func TestWrongDateThenCorrected(t *testing.T) {
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{MaxClockAhead: time.Minute})
	srv.AddUser(t, "camille@exemple.fr", "admin", "motdepasse-test")
	dir := t.TempDir()
	path := dir + "/tablette.db"

	r, err := device.Open(ctx, path, device.Options{ClockSkew: 30 * 24 * time.Hour, RetryFor: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Login(ctx, srv.URL, "camille@exemple.fr", "motdepasse-test"); err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := r.DB().Exec("INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 30)", id); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sync(ctx); syncproto.CodeOf(err) != syncproto.CodeClockAhead {
		t.Fatalf("sync with a date a month ahead: %v, want clock_ahead", err)
	}
	st, _ := r.Status(ctx)
	if st.Pending != 2 {
		t.Fatalf("%d changes pending after the refusal, want the 2 kept", st.Pending)
	}
	r.Close()

	// The conseillère corrects the date.
	r, err = device.Open(ctx, path, device.Options{RetryFor: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.DB().Exec("UPDATE activite SET duree = 45 WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Sync(ctx)
	if err != nil {
		t.Fatalf("sync after the date was corrected: %v", err)
	}
	if !rep.Restamped || rep.Pushed == 0 {
		t.Fatalf("report %+v: want pending writes restamped and pushed", rep)
	}
	var duree int
	if err := srv.DB().R.QueryRow("SELECT duree FROM activite WHERE id = ?", id).Scan(&duree); err != nil {
		t.Fatal(err)
	}
	cell, ok, err := relaistest.HeldCell(ctx, srv.DB().R, "activite", id, "duree")
	if err != nil || !ok {
		t.Fatalf("version of duree: %v %v", ok, err)
	}
	hlc := int64(cell.Version.HLC)
	if duree != 45 {
		t.Fatalf("server holds duree %d, want 45", duree)
	}
	if ahead := time.Until(syncproto.Timestamp(hlc).Time()); ahead > time.Minute {
		t.Fatalf("stored version is %s in the future", ahead)
	}
	var conflicts int
	srv.DB().R.QueryRow("SELECT COUNT(*) FROM _conflicts").Scan(&conflicts)
	if conflicts != 0 {
		var col string
		var wh, lh int64
		var wn, ln string
		srv.DB().R.QueryRow("SELECT col, winner_hlc, winner_node, loser_hlc, loser_node FROM _conflicts").Scan(&col, &wh, &wn, &lh, &ln)
		t.Fatalf("restamping made %d false conflicts: %s %v %s / %v %s", conflicts, col, syncproto.Timestamp(wh), wn, syncproto.Timestamp(lh), ln)
	}
}
