package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/server"
)

const (
	crashEmail    = "crash@relais.test"
	crashPassword = "mot-de-passe-crash"
)

// envCount reads a count from the environment, for longer campaigns.
func envCount(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// written is what one device wrote: the last value of each cell. Each
// device writes only rows it created, so these values must be the final
// ones everywhere.
type written struct {
	mu    sync.Mutex
	cells map[string]map[string]any // row id -> column -> value
}

func (w *written) set(id, col string, v any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cells[id] == nil {
		w.cells[id] = map[string]any{}
	}
	w.cells[id][col] = v
}

// TestServerKilled runs the real server binary while three devices write
// and sync in bounded loops, kills it with SIGKILL at random moments,
// checks the database's integrity and restarts it on the same data. In
// the end every device's writes are on the server and on every device,
// the outboxes are empty, and all replicas are identical.
func TestServerKilled(t *testing.T) {
	ctx := context.Background()
	kills := envCount("RELAIS_CRASH_KILLS", 6)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d kills", seed, kills)
	rng := rand.New(rand.NewPCG(seed, 1))

	data := t.TempDir()
	relaisCmd(t, crashPassword+"\n", "admin", "user", "add", "--data", data, "--email", crashEmail, "--role", "admin", "--password-stdin")
	srv := startServerProc(t, data, freeAddr(t))

	const nDev = 3
	devs := make([]*device.Replica, nDev)
	wrote := make([]*written, nDev)
	for i := range devs {
		r, err := device.Open(ctx, filepath.Join(t.TempDir(), fmt.Sprintf("d%d.db", i)), device.Options{
			HTTPClient: &http.Client{Timeout: 3 * time.Second},
			RetryFor:   500 * time.Millisecond,
			BatchSize:  7, PageLimit: 50,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := r.Login(ctx, srv.URL(), crashEmail, crashPassword); err != nil {
			t.Fatal(err)
		}
		devs[i], wrote[i] = r, &written{cells: map[string]map[string]any{}}
	}

	syncErrors := 0
	var errMu sync.Mutex
	for k := 0; k < kills; k++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i, r := range devs {
			wg.Add(1)
			go func(i int, r *device.Replica, seed uint64) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(i)))
				var mine []string
				for it := 0; it < 200; it++ { // bounded; the kill usually stops it first
					select {
					case <-stop:
						return
					default:
					}
					for n := 0; n < 1+rng.IntN(4); n++ {
						if len(mine) > 0 && rng.IntN(3) == 0 {
							id := mine[rng.IntN(len(mine))]
							v := fmt.Sprintf("note %d-%d", k, it)
							if _, err := r.DB().ExecContext(ctx, "UPDATE activite SET notes = ? WHERE id = ?", v, id); err != nil {
								t.Errorf("update: %v", err)
								return
							}
							wrote[i].set(id, "notes", v)
							continue
						}
						id := uuid.Must(uuid.NewV7()).String()
						d := int64(15 * (1 + rng.IntN(8)))
						c := fmt.Sprintf("Commune %d", rng.IntN(100))
						if _, err := r.DB().ExecContext(ctx, "INSERT INTO activite (id, duree, commune) VALUES (?, ?, ?)", id, d, c); err != nil {
							t.Errorf("insert: %v", err)
							return
						}
						wrote[i].set(id, "duree", d)
						wrote[i].set(id, "commune", c)
						mine = append(mine, id)
					}
					if _, err := r.Sync(ctx); err != nil {
						errMu.Lock()
						syncErrors++
						errMu.Unlock()
						time.Sleep(20 * time.Millisecond)
					}
				}
			}(i, r, seed+uint64(k))
		}
		time.Sleep(time.Duration(50+rng.IntN(600)) * time.Millisecond)
		srv.kill()
		close(stop)
		wg.Wait()
		integrity(t, server.DBPath(data))
		srv.start()
	}

	// Quiescence: every device syncs until a full round moves nothing.
	settle(t, devs)
	_, want := dumpFile(t, server.DBPath(data))
	total := 0
	for i, r := range devs {
		_, got := dumpDB(t, r.DB())
		if got != want {
			t.Errorf("device %d differs from the server after the crashes", i)
		}
		for id, cols := range wrote[i].cells {
			total += len(cols)
			for col, v := range cols {
				for j, other := range devs {
					var have any
					err := other.DB().QueryRowContext(ctx, "SELECT "+col+" FROM activite WHERE id = ?", id).Scan(&have)
					if err != nil || fmt.Sprint(have) != fmt.Sprint(v) {
						t.Errorf("device %d's write %s.%s = %v: device %d has %v (%v)", i, id, col, v, j, have, err)
					}
				}
			}
		}
	}
	t.Logf("%d kills survived; %d cells written by 3 devices all present everywhere; %d syncs failed while the server was down",
		kills, total, syncErrors)
}

// settle syncs every device until a full round pushes and pulls nothing,
// and checks that no outbox holds anything.
func settle(t *testing.T, devs []*device.Replica) {
	t.Helper()
	ctx := context.Background()
	for round := 0; ; round++ {
		if round == 10 {
			t.Fatal("devices still moving after 10 rounds")
		}
		moved := false
		for i, r := range devs {
			rep, err := r.Sync(ctx)
			if err != nil {
				t.Fatalf("device %d: %v", i, err)
			}
			if rep.Pushed+rep.Pulled > 0 {
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	for i, r := range devs {
		st, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending != 0 || st.Rejected != 0 {
			t.Errorf("device %d ends with %d pending and %d rejected", i, st.Pending, st.Rejected)
		}
	}
}

// TestDeviceKilledMidSync kills the real `relais device sync` process
// with SIGKILL again and again while it pushes a backlog, then while a
// second device pulls it. Each time the file passes the integrity check
// and, in the end, both devices and the server hold the same data with
// nothing duplicated.
func TestDeviceKilledMidSync(t *testing.T) {
	ctx := context.Background()
	rows := envCount("RELAIS_CRASH_ROWS", 800)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	t.Logf("seed %d, %d rows", seed, rows)

	data := t.TempDir()
	relaisCmd(t, crashPassword+"\n", "admin", "user", "add", "--data", data, "--email", crashEmail, "--role", "admin", "--password-stdin")
	srv := startServerProc(t, data, freeAddr(t))

	dir := t.TempDir()
	pusher, puller := filepath.Join(dir, "pusher.db"), filepath.Join(dir, "puller.db")
	for _, p := range []string{pusher, puller} {
		relaisCmd(t, crashPassword+"\n", "device", "login", "--db", p, "--server", srv.URL(), "--email", crashEmail, "--password-stdin")
	}
	r, err := device.Open(ctx, pusher, device.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := r.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < rows; i++ {
		if _, err := tx.ExecContext(ctx, "INSERT INTO activite (id, duree, commune, notes) VALUES (?, ?, ?, ?)",
			uuid.Must(uuid.NewV7()).String(), 30+i%90, fmt.Sprintf("Commune %d", i%50), fmt.Sprintf("visite %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	r.Close()

	killed := map[string]int{}
	for _, p := range []string{pusher, puller} {
		for attempt := 0; ; attempt++ {
			if attempt == 60 {
				t.Fatalf("%s: sync never completed in 60 attempts", p)
			}
			cmd := exec.Command(relaisBin, "device", "sync", "--db", p)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			finished := false
			select {
			case err = <-done:
				finished = true
			// Kill at a random moment, later as attempts go by: a sync
			// killed before its first exchange ever completes cannot make
			// progress, on any design.
			case <-time.After(time.Duration(20+rng.IntN(100+50*attempt)) * time.Millisecond):
				_ = cmd.Process.Signal(syscall.SIGKILL)
				err = <-done
				if cmd.ProcessState.Success() {
					finished = true // it completed just before the signal
				}
			}
			integrity(t, p)
			if finished {
				if err != nil {
					t.Fatalf("%s: relais device sync: %v", p, err)
				}
				break
			}
			killed[filepath.Base(p)]++
		}
	}

	// A last sync of each (nothing should move), then compare.
	for _, p := range []string{pusher, puller} {
		relaisCmd(t, "", "device", "sync", "--db", p)
	}
	srv.kill() // read the server's file at rest
	_, want := dumpFile(t, server.DBPath(data))
	for _, p := range []string{pusher, puller} {
		if _, got := dumpFile(t, p); got != want {
			t.Errorf("%s differs from the server", filepath.Base(p))
		}
	}
	db, err := openRead(server.DBPath(data))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, conflicts, pending int
	if err := db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM activite), (SELECT COUNT(*) FROM _conflicts)").Scan(&n, &conflicts); err != nil {
		t.Fatal(err)
	}
	if n != rows || conflicts != 0 {
		t.Errorf("server holds %d activities (want %d) and %d conflicts (want 0)", n, rows, conflicts)
	}
	pdb, err := openRead(pusher)
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	if err := pdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM _outbox").Scan(&pending); err != nil || pending != 0 {
		t.Errorf("pusher's outbox holds %d entries (%v)", pending, err)
	}
	t.Logf("device sync killed %d times while pushing and %d times while pulling %d rows; every file intact, replicas identical, nothing duplicated",
		killed["pusher.db"], killed["puller.db"], rows)
}
