package server_test

import (
	"bufio"
	"database/sql"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/syncproto"
)

// TestFleetNoteWithThePush: an exchange that pushes records its device's
// note for the fleet in the push's own write, so that it waits for the
// writer once (issue 11); whether the exchange leaves the device caught
// up is guessed from its previous exchange and corrected, with a second
// write, only when the pull says otherwise. Whatever the path, the fleet
// reads what the exchange did: last seen now, last caught up now or
// unchanged, what still waits in the outbox. Writes are counted from the
// server's writer metrics.
func TestFleetNoteWithThePush(t *testing.T) {
	start := time.Now().Truncate(time.Millisecond)
	var now atomic.Int64
	now.Store(start.UnixMilli())
	srv := relaistest.StartServer(t, server.Config{Now: func() time.Time { return time.UnixMilli(now.Load()) }})
	u := srv.AddUser(t, "alice@exemple.fr", auth.RoleConseiller, password)
	type tablet struct {
		p      auth.Principal
		token  string
		clock  *syncproto.Clock
		cursor int64
	}
	login := func() *tablet {
		id := uuid.Must(uuid.NewV7()).String()
		tok := srv.LoginHTTP(t, "alice@exemple.fr", password, id)
		return &tablet{p: auth.Principal{UserID: u.ID, DeviceID: id, Role: auth.RoleConseiller}, token: tok.AccessToken,
			clock: syncproto.NewClock(time.Now, 0, 0)}
	}
	a, b := login(), login()

	writes := func() int {
		res, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "relais_writer_wait_seconds_count "); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
		return 0 // no write yet
	}
	type note struct {
		seen, sync sql.NullInt64
		pending    int
	}
	read := func(d *tablet) note {
		var n note
		if err := srv.DB().R.QueryRow("SELECT last_seen_at, last_sync_at, pending FROM _devices WHERE id = ?", d.p.DeviceID).
			Scan(&n.seen, &n.sync, &n.pending); err != nil {
			t.Fatal(err)
		}
		return n
	}
	at := func(step int) sql.NullInt64 {
		return sql.NullInt64{Int64: start.UnixMilli() + int64(step)*1000, Valid: true}
	}

	steps := []struct {
		name     string
		d        *tablet
		push     int           // activities pushed (ten cells each)
		pending  int           // cells the device says wait in its outbox, this batch included
		fromZero bool          // pull from cursor 0 rather than the device's cursor
		limit    int           // page size asked (0: the default)
		more     bool          // the answer says more cells wait
		writes   int           // writer writes the exchange took
		wantSync int           // the step whose time last_sync_at holds (-1: none)
		wantPend int           // what the fleet says still waits
		later    time.Duration // added to the step's time
		wantSeen int           // the step whose time last_seen_at holds (0: this one)
	}{
		{name: "first push: guessed behind, caught up, corrected", d: a, push: 3, pending: 45, writes: 2, wantSync: 1, wantPend: 15},
		{name: "day's work: guessed caught up, one write", d: a, push: 1, pending: 10, writes: 1, wantSync: 2, wantPend: 0},
		{name: "new tablet's first pull, a page at a time", d: b, limit: 5, more: true, writes: 1, wantSync: -1},
		{name: "push while catching up: guessed behind, one write", d: b, push: 1, pending: 10, limit: 5, more: true, writes: 1, wantSync: -1},
		{name: "last page: caught up", d: b, limit: 10000, writes: 1, wantSync: 5},
		{name: "push guessed caught up, more waits: corrected back", d: b, push: 1, pending: 10, fromZero: true, limit: 5, more: true, writes: 2, wantSync: 5},
		// A long pull is noted when it starts, then at most every
		// pullNoteEvery (30 s): a note per page emptied the readers'
		// page caches at every page.
		{name: "next page a second later: not noted", d: b, limit: 5, more: true, writes: 0, wantSync: 5, wantSeen: 6},
		{name: "a page half a minute later: noted", d: b, limit: 5, more: true, writes: 1, wantSync: 5, later: 30 * time.Second},
		{name: "the last page, a second later: caught up, noted", d: b, limit: 10000, writes: 1, wantSync: 9, later: 30 * time.Second},
	}
	for i, st := range steps {
		step := i + 1
		now.Store(at(step).Int64 + st.later.Milliseconds())
		req := &syncproto.SyncRequest{Cursor: st.d.cursor, Limit: st.limit, Pending: st.pending, Clock: st.d.clock.Now(), RefuseRows: true}
		if st.fromZero {
			req.Cursor = 0
		}
		if st.push > 0 {
			req.Push = activityBatch(st.d.clock, st.d.p, st.push)
		}
		before := writes()
		status, raw := srv.PostJSON(t, syncproto.PathSync, st.d.token, req)
		if status != http.StatusOK {
			t.Fatalf("step %d (%s): %d %s", step, st.name, status, raw)
		}
		resp, err := syncproto.DecodeResponse(raw)
		if err != nil {
			t.Fatal(err)
		}
		st.d.cursor = resp.Cursor
		if resp.More != st.more {
			t.Fatalf("step %d (%s): more = %v, want %v (the step does not test what it says)", step, st.name, resp.More, st.more)
		}
		if got := writes() - before; got != st.writes {
			t.Errorf("step %d (%s): %d writes, want %d", step, st.name, got, st.writes)
		}
		want := note{seen: sql.NullInt64{Int64: now.Load(), Valid: true}, pending: st.wantPend}
		if st.wantSeen > 0 {
			want.seen = at(st.wantSeen)
		}
		if st.wantSync >= 0 {
			want.sync = at(st.wantSync)
			if st.wantSync == step {
				want.sync = want.seen
			}
		}
		if got := read(st.d); got != want {
			t.Errorf("step %d (%s): fleet note %+v, want %+v", step, st.name, got, want)
		}
	}
}
