package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// served is a relais serve process started by a test.
type served struct {
	cmd    *exec.Cmd
	url    string
	addr   string
	logs   *syncBuffer
	exited chan error
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe starts `relais serve` with args and --addr; it is stopped by
// SIGTERM (then killed, by its own PID) when the test ends.
func startServe(t *testing.T, bin, addr string, args ...string) *served {
	t.Helper()
	s := &served{addr: addr, url: "http://" + addr, logs: &syncBuffer{}, exited: make(chan error, 1)}
	s.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr}, args...)...)
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop ends the server with SIGTERM and waits for it (30 s at most).
func (s *served) stop(t *testing.T) {
	t.Helper()
	if s.cmd.Process == nil {
		return
	}
	select {
	case err := <-s.exited:
		s.exited <- err
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.exited <- err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill() // only our own child
		t.Errorf("server still running 30 s after SIGTERM")
	}
}

// waitExit waits for a server expected to stop by itself and returns its
// exit error.
func (s *served) waitExit(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-s.exited:
		s.exited <- err
		return err
	case <-time.After(within):
		t.Fatalf("server still running after %v; logs:\n%s", within, s.logs.String())
		return nil
	}
}

// One server per data directory: a second `relais serve` on the same
// directory exits non-zero with a message in French and English, and the
// first one keeps serving; a port already in use is reported without a
// "listening" line before it.
func TestOneServerPerDataDirectory(t *testing.T) {
	bin := buildBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	first := startServe(t, bin, freeAddr(t), "--data", data)
	if !waitHealthy(first.url, 20*time.Second) {
		t.Fatalf("first server never became healthy; logs:\n%s", first.logs.String())
	}

	second := startServe(t, bin, freeAddr(t), "--data", data)
	err := second.waitExit(t, 20*time.Second)
	if err == nil || second.cmd.ProcessState.ExitCode() == 0 {
		t.Fatalf("second server on the same directory exited %v; logs:\n%s", err, second.logs.String())
	}
	msg := second.logs.String()
	for _, want := range []string{"data directory in use by another relais server", "un autre serveur Relais utilise déjà ce dossier", "pid "} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "listening") {
		t.Errorf("the refused server logged that it listens:\n%s", msg)
	}
	if !waitHealthy(first.url, 5*time.Second) {
		t.Fatalf("first server stopped answering after the second was refused")
	}

	// Same port, other directory: refused on the port, before "listening".
	third := startServe(t, bin, first.addr, "--data", filepath.Join(t.TempDir(), "other"))
	if err := third.waitExit(t, 20*time.Second); err == nil {
		t.Fatalf("server on a port in use exited 0; logs:\n%s", third.logs.String())
	}
	msg = third.logs.String()
	if !strings.Contains(msg, "already in use") || !strings.Contains(msg, "déjà utilisée") {
		t.Errorf("port in use not reported clearly:\n%s", msg)
	}
	if strings.Contains(msg, "listening") {
		t.Errorf("server on a port in use logged that it listens:\n%s", msg)
	}

	// Once the first server is stopped, the directory is free again.
	first.stop(t)
	if err := first.waitExit(t, time.Second); err != nil {
		t.Fatalf("first server did not stop cleanly: %v\n%s", err, first.logs.String())
	}
	again := startServe(t, bin, freeAddr(t), "--data", data)
	if !waitHealthy(again.url, 20*time.Second) {
		t.Fatalf("server on the freed directory never became healthy; logs:\n%s", again.logs.String())
	}
}

// The disk floor is set from the command line: above the free space,
// /readyz answers 503 naming the disk while /healthz stays 200.
func TestReadinessDiskFloorFlag(t *testing.T) {
	bin := buildBinary(t)
	srv := startServe(t, bin, freeAddr(t), "--data", filepath.Join(t.TempDir(), "data"), "--min-free-disk-mb", "1000000000000")
	if !waitHealthy(srv.url, 20*time.Second) {
		t.Fatalf("server never became healthy; logs:\n%s", srv.logs.String())
	}
	res, err := http.Get(srv.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusServiceUnavailable || r.Ready || !strings.Contains(r.Checks["disk"], "below the floor") {
		t.Fatalf("/readyz with the floor above free space: %d %+v", res.StatusCode, r)
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"127.0.0.0/8,::1/128", "[127.0.0.0/8 ::1/128]", false},
		{" 10.1.2.3 , 192.168.1.7/24", "[10.1.2.3/32 192.168.1.0/24]", false},
		{"::1", "[::1/128]", false},
		{"localhost", "", true},
		{"10.0.0.0/33", "", true},
		{" , ", "", true},
	}
	for _, tt := range tests {
		got, err := parsePrefixes(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parsePrefixes(%q): error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && fmt.Sprint(got) != tt.want {
			t.Errorf("parsePrefixes(%q) = %v, want %s", tt.in, got, tt.want)
		}
	}
}

// relaisFails runs the binary expecting it to fail, and returns stderr.
func relaisFails(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err == nil {
		t.Fatalf("relais %s succeeded, want a refusal; stdout: %s", strings.Join(args, " "), out.String())
	}
	return errb.String()
}

// Back up, sync more, restore, sync: nothing acknowledged is lost. Two
// devices write and sync after a backup taken while the server runs; the
// server is restored from the backup (refused while it runs), so it no
// longer has those writes and its sequence is behind both devices'
// cursors. At their next syncs the devices notice the new history, send
// their own writes again and pull everything again: both devices, and a
// third device logged in afterwards (which sees what the server holds),
// end with the same rows, every acknowledged write among them.
func TestBackupRestoreLosesNothing(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr := freeAddr(t)
	srv := startServe(t, bin, addr, "--data", data)
	if !waitHealthy(srv.url, 20*time.Second) {
		t.Fatalf("server never became healthy; logs:\n%s", srv.logs.String())
	}
	relais(t, bin, "un-mot-de-passe\n", "admin", "user", "add", "--data", data, "--email", "camille@exemple.fr", "--role", "admin", "--password-stdin")
	dev := func(name string) string { return filepath.Join(dir, name+".db") }
	login := func(name string) {
		relais(t, bin, "un-mot-de-passe\n", "device", "login", "--db", dev(name), "--server", srv.url, "--email", "camille@exemple.fr", "--password-stdin")
	}
	sql := func(name, q string) string { return relais(t, bin, "", "device", "sql", "--db", dev(name), "--csv", q) }
	sync := func(name string) string { return relais(t, bin, "", "device", "sync", "--db", dev(name)) }
	login("a")
	login("b")

	ids := []string{
		"01928a10-0000-7000-8000-000000000001", "01928a10-0000-7000-8000-000000000002",
		"01928a10-0000-7000-8000-000000000003", "01928a10-0000-7000-8000-000000000004",
		"01928a10-0000-7000-8000-000000000005",
	}
	sql("a", fmt.Sprintf("INSERT INTO activite (id, type, duree, commune) VALUES ('%s', 'individuel', 45, 'Laval')", ids[0]))
	// A row no one touches after the backup: a device pulling from zero
	// would download it again.
	sql("a", fmt.Sprintf("INSERT INTO activite (id, type, duree, commune) VALUES ('%s', 'individuel', 20, 'Ernée')", ids[4]))
	sync("a")
	sync("b")

	backup := filepath.Join(dir, "sauvegarde.db")
	out := relais(t, bin, "", "backup", "--data", data, "--to", backup)
	if !strings.Contains(out, "integrity_check ok") {
		t.Fatalf("backup output: %s", out)
	}
	if msg := relaisFails(t, bin, "backup", "--data", data, "--to", backup); !strings.Contains(msg, "already exists") {
		t.Fatalf("a backup over an existing file: %s", msg)
	}

	// After the backup: acknowledged writes on both devices, each pulled
	// by the other.
	sql("a", fmt.Sprintf("INSERT INTO activite (id, type, duree, commune) VALUES ('%s', 'collectif', 90, 'Mayenne')", ids[1]))
	sql("a", fmt.Sprintf("UPDATE activite SET duree = 50 WHERE id = '%s'", ids[0]))
	if out := sync("a"); !strings.Contains(out, "Envoyées : 4") {
		t.Fatalf("sync of a after the backup: %s", out)
	}
	sql("b", fmt.Sprintf("INSERT INTO activite (id, type, duree, commune) VALUES ('%s', 'individuel', 30, 'Évron')", ids[2]))
	sync("b")
	sync("a")

	if msg := relaisFails(t, bin, "restore", "--from", backup, "--data", data); !strings.Contains(msg, "data directory in use") {
		t.Fatalf("restore while the server runs: %s", msg)
	}
	srv.stop(t)
	if err := srv.waitExit(t, time.Second); err != nil {
		t.Fatalf("server did not stop cleanly: %v", err)
	}
	out = relais(t, bin, "", "restore", "--from", backup, "--data", data)
	if !strings.Contains(out, "Nouvel historique") || !strings.Contains(out, "before-restore") {
		t.Fatalf("restore output: %s", out)
	}
	srv = startServe(t, bin, addr, "--data", data)
	if !waitHealthy(srv.url, 20*time.Second) {
		t.Fatalf("restored server never became healthy; logs:\n%s", srv.logs.String())
	}
	// The restored server no longer has the writes made after the backup.
	login("témoin")
	sync("témoin")
	if got := sql("témoin", "SELECT count(*) AS n FROM activite"); got != "n\n2\n" {
		t.Fatalf("the restored server should hold only the backup's rows, a fresh device got:\n%s", got)
	}

	// A write on b right after the restore, before anything else.
	sql("b", fmt.Sprintf("INSERT INTO activite (id, type, duree, commune) VALUES ('%s', 'individuel', 15, 'Laval')", ids[3]))
	// The first sync of each device after the restore says, in French,
	// why it downloads everything again; the next ones do not.
	for i, name := range []string{"a", "b", "a", "b"} {
		out := sync(name)
		if said := strings.Contains(out, "restauré depuis une sauvegarde"); said != (i < 2) {
			t.Fatalf("sync %d of device %s after the restore, saying the server was restored: %v, want %v:\n%s", i, name, said, i < 2, out)
		}
		// b synced last with the backup's history: it pulls again only
		// past the sequence the two histories share. It receives the 2
		// rows a wrote after the backup, sent again by a, whole (a row
		// travels whole): the collectif row and the re-dated one, 6
		// cells; not the backup row no one touched since (pulling from 0
		// brought its 3 cells too).
		if i == 1 && !strings.Contains(out, "Reçues : 6 ") {
			t.Fatalf("device b's first sync after the restore did not receive just what the backup lacked:\n%s", out)
		}
	}
	login("c")
	sync("c")
	q := "SELECT id, type, duree, commune FROM activite ORDER BY id"
	want := sql("a", q)
	for _, id := range ids {
		if !strings.Contains(want, id) {
			t.Fatalf("device a lacks %s after the restore:\n%s", id, want)
		}
	}
	if !strings.Contains(want, ids[0]+",individuel,50,Laval") {
		t.Fatalf("the update made after the backup is lost:\n%s", want)
	}
	for _, name := range []string{"b", "c"} {
		if got := sql(name, q); got != want {
			t.Fatalf("device %s differs from a:\n%s\nwant:\n%s", name, got, want)
		}
	}
}
