package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds the real relais command once per test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relais")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// relais runs the binary and returns its stdout; it fails the test when
// the command fails.
func relais(t *testing.T, bin, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("relais %s: %v\nstderr: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// The README's walk-through, with the real binary: a server started on a
// fresh data directory, an account added while it runs, two devices
// logged in, a write on one arriving on the other, and a clean stop on
// SIGTERM.
func TestServeAndTwoDevices(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr := freeAddr(t)
	srv := exec.Command(bin, "serve", "--data", data, "--addr", addr)
	var logs bytes.Buffer
	srv.Stderr = &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		if srv.ProcessState == nil {
			_ = srv.Process.Kill() // only our own child, by its PID
		}
	}()
	url := "http://" + addr
	if !waitHealthy(url, 20*time.Second) {
		t.Fatalf("server never became healthy; logs:\n%s", logs.String())
	}

	relais(t, bin, "un-mot-de-passe\n", "admin", "user", "add", "--data", data, "--email", "camille@exemple.fr", "--role", "admin", "--password-stdin")
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	for _, db := range []string{a, b} {
		relais(t, bin, "un-mot-de-passe\n", "device", "login", "--db", db, "--server", url, "--email", "camille@exemple.fr", "--password-stdin")
	}
	id := "01928a10-0000-7000-8000-000000000001"
	relais(t, bin, "", "device", "sql", "--db", a, fmt.Sprintf("INSERT INTO activite (id, type, duree, commune) VALUES ('%s', 'individuel', 45, 'Laval')", id))
	if out := relais(t, bin, "", "device", "sync", "--db", a); !strings.Contains(out, "Envoyées : 3") {
		t.Fatalf("sync of a: %s", out)
	}
	relais(t, bin, "", "device", "sync", "--db", b)
	out := relais(t, bin, "", "device", "sql", "--db", b, "--csv", "SELECT id, type, duree, commune FROM activite")
	if want := "id,type,duree,commune\n" + id + ",individuel,45,Laval\n"; out != want {
		t.Fatalf("device b holds:\n%s\nwant:\n%s", out, want)
	}
	status := relais(t, bin, "", "device", "status", "--db", b)
	if !strings.Contains(status, "Modifications en attente") || !strings.Contains(status, "Dernière synchronisation réussie") {
		t.Fatalf("status:\n%s", status)
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("server did not stop cleanly on SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server still running 30 s after SIGTERM")
	}
}

func waitHealthy(url string, within time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// Errors reach the user as one sentence on stderr with a non-zero exit.
func TestErrorsAreOneSentence(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"admin", "user", "add", "--data", t.TempDir(), "--email", "x@exemple.fr"}, 2, "--password-stdin"},
		{[]string{"nonsense"}, 2, "commande inconnue « nonsense »"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }})
		if code != tt.code || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("relais %v: exit %d, stderr %q; want exit %d mentioning %q", tt.args, code, errb.String(), tt.code, tt.want)
		}
		if tt.code == 1 && strings.Count(strings.TrimSpace(errb.String()), "\n") != 0 {
			t.Errorf("relais %v: error spans several lines: %q", tt.args, errb.String())
		}
	}
}
