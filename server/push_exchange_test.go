package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/syncproto"
)

// An exchange that pushes a batch pulls past the batch's own cells when
// the device was caught up, and still sends everything else: the cells
// other devices wrote before the push, those written after it, and with
// resync the device's own.
func TestExchangePullAfterPush(t *testing.T) {
	relaistest.EachEngine(t, func(t *testing.T, e relaistest.Engine) {
		cases := []struct {
			name string
			// otherFirst: another device pushes before this one.
			otherFirst bool
			resync     bool
			// wantOwn, wantOther: cells of each device in the answer.
			wantOwn, wantOther int
		}{
			{name: "caught up", wantOwn: 0, wantOther: 0},
			{name: "another device wrote before", otherFirst: true, wantOwn: 0, wantOther: 20},
			{name: "resync", resync: true, wantOwn: 30, wantOther: 0},
			{name: "resync, another device wrote before", otherFirst: true, resync: true, wantOwn: 30, wantOther: 20},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				srv := e.Start(t, server.Config{})
				admin := srv.AddUser(t, "admin@exemple.fr", auth.RoleAdmin, password)
				me := auth.Principal{UserID: admin.ID, DeviceID: uuid.Must(uuid.NewV7()).String(), Role: auth.RoleAdmin}
				other := auth.Principal{UserID: admin.ID, DeviceID: uuid.Must(uuid.NewV7()).String(), Role: auth.RoleAdmin}
				clock := syncproto.NewClock(time.Now, 0, 0)
				exchange := func(p auth.Principal, b *syncproto.Batch, cursor int64, resync bool) *syncproto.SyncResponse {
					t.Helper()
					resp, err := srv.Exchange(ctx, p, &syncproto.SyncRequest{Push: b, Cursor: cursor, Clock: clock.Now(), Resync: resync})
					if err != nil {
						t.Fatalf("exchange of %s: %v", p.DeviceID, err)
					}
					if b != nil && resp.Ack != b.ID {
						t.Fatalf("batch %s not acknowledged", b.ID)
					}
					return resp
				}
				cursor := exchange(me, nil, 0, false).Cursor
				if c.otherFirst {
					exchange(other, activityBatch(clock, other, 2), 0, false)
				}
				mine := activityBatch(clock, me, 3)
				resp := exchange(me, mine, cursor, c.resync)
				if own, others := countByNode(resp.Changes, me.DeviceID); own != c.wantOwn || others != c.wantOther {
					t.Fatalf("the answer holds %d own and %d other cells, want %d and %d", own, others, c.wantOwn, c.wantOther)
				}
				if resp.More {
					t.Fatal("the answer says there is more")
				}

				// Whatever was skipped, the cursor stands past this batch
				// and nothing written afterwards is missed.
				exchange(other, activityBatch(clock, other, 1), 0, false)
				next := exchange(me, nil, resp.Cursor, false)
				if own, others := countByNode(next.Changes, me.DeviceID); own != 0 || others != 10 {
					t.Fatalf("the next pull holds %d own and %d other cells, want 0 and 10", own, others)
				}

				// The same batch sent again (its answer lost) is acknowledged
				// and its pull reads from the cursor given, as any pull does.
				again := exchange(me, mine, cursor, true)
				if own, _ := countByNode(again.Changes, me.DeviceID); own != 30 {
					t.Fatalf("a resync after the replayed batch holds %d own cells, want 30", own)
				}
			})
		}
	})
}

func countByNode(changes []syncproto.Change, node string) (own, others int) {
	for _, c := range changes {
		if c.Version.Node == node {
			own++
		} else {
			others++
		}
	}
	return own, others
}
