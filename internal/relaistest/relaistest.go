// Package relaistest starts real Relais components for tests: a server
// (the real Fiber app on a loopback port, on a fresh data directory) and
// device replicas logged in to it.
package relaistest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

// Server is a server running for one test.
type Server struct {
	*server.Server
	URL     string
	DataDir string
	// Store is the PostgreSQL database the server runs on, if any: a
	// second server started on it shares the first one's state.
	Store string
}

// StartServer starts a server on 127.0.0.1 with a fresh data directory
// (cfg.DataDir when set) and stops it when the test ends.
func StartServer(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx := context.Background()
	if cfg.DeviceSchema == nil {
		cfg.DeviceSchema = deviceSchema(t)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.App().Listener(ln) // returns when the app shuts down
	}()
	t.Cleanup(func() {
		_ = srv.App().ShutdownWithTimeout(5 * time.Second)
		<-done
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	url := "http://" + ln.Addr().String()
	// Wait until the app serves: a shutdown that comes before Listener
	// has started its server is lost, and the cleanup above would then
	// wait forever (seen with a test that made no request).
	for i := 0; ; i++ {
		res, err := http.Get(url + "/healthz")
		if err == nil {
			res.Body.Close()
			break
		}
		if i == 200 {
			t.Fatalf("server never answered /healthz: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &Server{Server: srv, URL: url, DataDir: cfg.DataDir, Store: cfg.Store}
}

// AddUser creates an account on the server.
func (s *Server) AddUser(t testing.TB, email, role, password string) auth.User {
	t.Helper()
	a := &auth.Accounts{W: s.DB().W, R: s.DB().R}
	u, err := a.AddUser(context.Background(), email, role, password)
	if err != nil {
		t.Fatalf("add user %s: %v", email, err)
	}
	return u
}

// OpenDevice opens a fresh replica in the test's temporary directory.
func OpenDevice(t testing.TB, name string, opts device.Options) *device.Replica {
	t.Helper()
	if opts.RetryFor == 0 {
		opts.RetryFor = 2 * time.Second
	}
	r, err := device.Open(context.Background(), filepath.Join(t.TempDir(), name+".db"), opts)
	if err != nil {
		t.Fatalf("open device %s: %v", name, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// LoggedInDevice opens a replica and logs it in to s as email.
func (s *Server) LoggedInDevice(t testing.TB, name, email, password string) *device.Replica {
	t.Helper()
	r := OpenDevice(t, name, device.Options{})
	if err := r.Login(context.Background(), s.URL, email, password); err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return r
}

// TwoTablets is where most sync tests start: a server, one account, and
// two devices of that account logged in, like one conseillère's two
// tablets. A and B are named "a" and "b".
type TwoTablets struct {
	Server *Server
	User   auth.User
	A, B   *device.Replica
}

// TabletsPassword is the password of the TwoTablets account.
const TabletsPassword = "motdepasse1"

// StartTwoTablets starts a server with cfg, adds email with role, and
// logs two fresh devices in to it.
func StartTwoTablets(t testing.TB, cfg server.Config, email, role string) TwoTablets {
	t.Helper()
	srv := StartServer(t, cfg)
	u := srv.AddUser(t, email, role, TabletsPassword)
	return TwoTablets{
		Server: srv,
		User:   u,
		A:      srv.LoggedInDevice(t, "a", email, TabletsPassword),
		B:      srv.LoggedInDevice(t, "b", email, TabletsPassword),
	}
}

var deviceSchemaOnce struct {
	sync.Once
	json []byte
	err  error
}

// deviceSchema is device.SchemaJSON, computed once per test binary.
func deviceSchema(t testing.TB) []byte {
	t.Helper()
	deviceSchemaOnce.Do(func() {
		deviceSchemaOnce.json, deviceSchemaOnce.err = device.SchemaJSON(context.Background())
	})
	if deviceSchemaOnce.err != nil {
		t.Fatalf("device schema: %v", deviceSchemaOnce.err)
	}
	return deviceSchemaOnce.json
}
