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
