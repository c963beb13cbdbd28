package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// TestPullOrderAcrossServers is the end-to-end proof of docs/DESIGN.md
// ("Pull order across servers"): two servers on one PostgreSQL. A push
// on the first is held between its draw of sequence numbers and its
// commit; meanwhile a push on the second is on its way, and a device
// pulls through the second. Nothing that pull returns may have a number
// above one still uncommitted, or the device's cursor would pass the
// held push for ever. The second push therefore cannot be acknowledged
// while the first is held; once released, every device ends with every
// change.
func TestPullOrderAcrossServers(t *testing.T) {
	ctx := context.Background()
	url := pgtest.DB(t)
	var armed atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	one := relaistest.StartServer(t, server.Config{Store: url, AfterDraw: func() {
		if armed.Load() {
			once.Do(func() {
				close(held)
				<-release
			})
		}
	}})
	// Released before the servers stop, should the test fail while the
	// push is held (cleanups run last registered first).
	var released sync.Once
	let := func() { released.Do(func() { close(release) }) }
	t.Cleanup(let)
	two := relaistest.StartServer(t, server.Config{Store: url})
	if one.Node() == two.Node() {
		t.Fatalf("two servers on one database write under the same node %s", one.Node())
	}
	one.AddUser(t, "camille@exemple.fr", "admin", relaistest.TabletsPassword)
	a := one.LoggedInDevice(t, "a", "camille@exemple.fr", relaistest.TabletsPassword)
	b := two.LoggedInDevice(t, "b", "camille@exemple.fr", relaistest.TabletsPassword)
	c := two.LoggedInDevice(t, "c", "camille@exemple.fr", relaistest.TabletsPassword)

	insert := func(r *device.Replica, nom string) string {
		t.Helper()
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := r.DB().ExecContext(ctx, "INSERT INTO structure (id, nom) VALUES (?, ?)", id, nom); err != nil {
			t.Fatal(err)
		}
		return id
	}
	sync := func(r *device.Replica) error {
		_, err := r.Sync(ctx)
		return err
	}
	// Every device has pushed once (its node is known) and c's cursor is
	// at the head.
	insert(a, "Médiathèque de Laval")
	insert(b, "Mairie de Craon")
	for _, r := range []*device.Replica{a, b, c} {
		if err := sync(r); err != nil {
			t.Fatal(err)
		}
	}

	armed.Store(true)
	insert(a, "France Services Évron")
	aDone := make(chan error, 1)
	go func() { aDone <- sync(a) }()
	<-held // a's push holds its numbers, uncommitted

	insert(b, "Espace numérique de Mayenne")
	bDone := make(chan error, 1)
	go func() { bDone <- sync(b) }()
	// b's push must wait for the numbers a holds: wait until it does,
	// or fail if it is answered first.
	for !lockWaited(t, one) {
		select {
		case err := <-bDone:
			t.Fatalf("the push on the second server was answered (%v) while the first held smaller numbers", err)
		case <-time.After(10 * time.Millisecond):
		}
	}

	pulls := pullsServed(t, two)
	cDone := make(chan error, 1)
	go func() { cDone <- sync(c) }()
	for pullsServed(t, two) == pulls {
		time.Sleep(10 * time.Millisecond) // c's pull has read the database once this counts it
	}
	select {
	case err := <-bDone:
		t.Fatalf("the push on the second server was answered (%v) while the first held smaller numbers", err)
	default:
	}
	let()
	for name, done := range map[string]chan error{"a": aDone, "b": bDone, "c": cDone} {
		if err := <-done; err != nil {
			t.Fatalf("sync of %s: %v", name, err)
		}
	}
	// Each device syncs once more, through either server: all hold the
	// same four structures.
	for _, r := range []*device.Replica{a, b, c, a, b, c} {
		if err := sync(r); err != nil {
			t.Fatal(err)
		}
	}
	want := ""
	for i, r := range []*device.Replica{a, b, c} {
		got := relaistest.Dump(t, r.DB(), "SELECT id, nom FROM structure ORDER BY id")
		if strings.Count(got, "\n") != 4 {
			t.Fatalf("device %d holds %d structures, want 4:\n%s", i, strings.Count(got, "\n"), got)
		}
		if i > 0 && got != want {
			t.Fatalf("devices differ:\n%s\n---\n%s", want, got)
		}
		want = got
	}
}

// lockWaited says whether a transaction on the server's database waits
// for a lock another holds.
func lockWaited(t *testing.T, s *relaistest.Server) bool {
	t.Helper()
	var n int
	if err := s.DB().R.QueryRow("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// pullsServed is how many pulls the server has read (its pull lag
// histogram's count, on /metrics).
func pullsServed(t *testing.T, s *relaistest.Server) int {
	t.Helper()
	res, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "relais_pull_lag_cells_count "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// TestBatchRetriedOnTheOtherServer: a device whose answer is slow sends
// its batch again, and the load balancer hands the retry to the other
// server while the first still applies it. The retry waits for the
// device's lock (docs/DESIGN.md, "What else a server must not keep to
// itself"), then finds the first answer: both answers are the same
// acknowledgement, and the batch is recorded and applied once. Without
// the lock the retry would apply the batch beside the first attempt
// and fail on the batch record's key.
func TestBatchRetriedOnTheOtherServer(t *testing.T) {
	url := pgtest.DB(t)
	var armed atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	one := relaistest.StartServer(t, server.Config{Store: url, AfterDraw: func() {
		if armed.Load() {
			once.Do(func() {
				close(held)
				<-release
			})
		}
	}})
	let := func() { released.Do(func() { close(release) }) }
	t.Cleanup(let)
	two := relaistest.StartServer(t, server.Config{Store: url})
	one.AddUser(t, "camille@exemple.fr", "admin", relaistest.TabletsPassword)
	dev := uuid.Must(uuid.NewV7()).String()
	tok := one.LoginHTTP(t, "camille@exemple.fr", relaistest.TabletsPassword, dev).AccessToken
	ver := syncproto.Version{HLC: syncproto.FromTime(time.Now()), Node: dev}
	req := syncproto.SyncRequest{Push: &syncproto.Batch{ID: "lot-1", Changes: []syncproto.Change{
		{Table: "structure", PK: uuid.Must(uuid.NewV7()).String(), Column: "nom", Value: "Médiathèque", Version: ver},
		{Table: "structure", PK: uuid.Must(uuid.NewV7()).String(), Column: "nom", Value: "Mairie", Version: ver},
	}}}
	type answer struct {
		status int
		raw    []byte
	}
	post := func(s *relaistest.Server, to chan<- answer) {
		st, raw := s.PostJSON(t, syncproto.PathSync, tok, req)
		to <- answer{st, raw}
	}
	armed.Store(true)
	first, second := make(chan answer, 1), make(chan answer, 1)
	go post(one, first)
	<-held
	go post(two, second)
	for !lockWaited(t, two) {
		select {
		case a := <-second:
			t.Fatalf("the retry was answered (%d %s) while the first attempt was still under way", a.status, a.raw)
		case <-time.After(10 * time.Millisecond):
		}
	}
	let()
	a, b := <-first, <-second
	if a.status != http.StatusOK || b.status != http.StatusOK {
		t.Fatalf("first attempt %d %s, retry %d %s", a.status, a.raw, b.status, b.raw)
	}
	var ra, rb syncproto.SyncResponse
	if err := json.Unmarshal(a.raw, &ra); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b.raw, &rb); err != nil {
		t.Fatal(err)
	}
	if ra.Ack != "lot-1" || rb.Ack != "lot-1" || ra.Applied != 2 || rb.Applied != 2 {
		t.Fatalf("answers: first ack %q applied %d, retry ack %q applied %d", ra.Ack, ra.Applied, rb.Ack, rb.Applied)
	}
	var records, numbered int
	db := one.DB().R
	if err := db.QueryRow("SELECT COUNT(*) FROM _batches WHERE device_id = ? AND id = 'lot-1'", dev).Scan(&records); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM _rows WHERE seq IS NOT NULL").Scan(&numbered); err != nil {
		t.Fatal(err)
	}
	if records != 1 || numbered != 2 {
		t.Fatalf("%d batch records, %d rows numbered; want 1 and 2", records, numbered)
	}
}
