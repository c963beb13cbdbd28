// Package server is the central Relais server: the HTTP API on Fiber, the
// exchange that applies pushed batches and serves pulls, and the wiring of
// accounts and tokens. The merge itself lives in package replica.
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/server/scope"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/store/pgstore"
	"github.com/relais-numerique/relais/syncproto"
)

// Config is the server's configuration. Zero values take the defaults.
type Config struct {
	DataDir string
	// Store, a postgres:// address, keeps the server's state in that
	// PostgreSQL database, which other servers may share (issue 15;
	// docs/DESIGN.md, "Several servers on one PostgreSQL"). Empty keeps
	// it in the SQLite database of DataDir.
	Store string
	// AfterDraw, a test hook, is called inside a write transaction on
	// PostgreSQL right after it drew sequence numbers, before it writes
	// and commits: a test holds a push there to show that no pull skips
	// its numbers (TestPullOrderAcrossServers).
	AfterDraw func()
	// MaxClockAhead is how far ahead of the server's wall clock a change's
	// timestamp may be before it is refused with clock_ahead.
	MaxClockAhead time.Duration
	// BodyLimit caps a request body as sent (compressed); BodyLimit*
	// DecompressRatio caps it once decompressed.
	BodyLimit       int
	DecompressRatio int
	AccessTTL       time.Duration
	// A refresh token unused for RefreshIdle, or older than
	// RefreshAbsolute counted from the login, no longer refreshes: the
	// device must log in again. RefreshGrace is how long after a refresh
	// the same token may be presented once more, for a device whose
	// answer was lost on a bad link.
	RefreshIdle     time.Duration
	RefreshAbsolute time.Duration
	RefreshGrace    time.Duration
	// Failed logins allowed per account and per client address within
	// LoginWindow before further attempts are answered rate_limited.
	LoginFailuresPerAccount int
	LoginFailuresPerAddress int
	LoginWindow             time.Duration
	Logger                  *slog.Logger
	// Now replaces the wall clock in tests.
	Now func() time.Time
	// Node overrides the node id of this process's own writes. The admin
	// commands open the data directory while the server runs; with the
	// same node id, both processes could stamp two different writes of one
	// cell with the same version, which every replica would then take for
	// one write. Each admin run therefore writes under a node of its own.
	Node string
	// MinFreeDisk is the free space, in bytes, the data directory's disk
	// must keep for /readyz to answer ready (DefaultMinFreeDisk when
	// zero; no check when negative).
	MinFreeDisk int64
	// MetricsAllow are the client addresses GET /metrics answers
	// (DefaultMetricsAllow, loopback only, when empty); MetricsToken, when
	// set, must also come as a bearer token.
	MetricsAllow []netip.Prefix
	MetricsToken string
	// TLSCertFile and TLSKeyFile, both set, make Serve answer HTTPS only
	// (PEM files; the certificate file may hold the chain after it).
	TLSCertFile string
	TLSKeyFile  string
	// Timeouts and bounds against slow or numerous clients (zero takes
	// the Default* value; see defaults.go and SECURITY.md).
	HeaderTimeout, BodyTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxConnections, MaxPreAuthRequests                    int
	// DeviceSchema, when set, answers GET syncproto.PathDeviceSchema:
	// the JSON of the SQL a device replica is made of. The server and
	// the device SDK meet only on the wire, so the command that starts
	// the server gives it (cmd/relais passes device.SchemaSQL's
	// answer); without it the route answers not_found.
	DeviceSchema []byte
	// TrustedProxies are the reverse proxies whose X-Forwarded-Proto the
	// dashboard believes when it decides whether a browser came over
	// HTTPS (web.HTTPS: Secure, __Host- cookies); empty trusts none.
	TrustedProxies []netip.Prefix
}

func (c *Config) defaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.MaxClockAhead == 0 {
		c.MaxClockAhead = DefaultMaxClockAhead
	}
	if c.BodyLimit == 0 {
		c.BodyLimit = DefaultBodyLimit
	}
	if c.DecompressRatio == 0 {
		c.DecompressRatio = DefaultDecompressRatio
	}
	if c.AccessTTL == 0 {
		c.AccessTTL = DefaultAccessTTL
	}
	if c.RefreshIdle == 0 {
		c.RefreshIdle = DefaultRefreshIdle
	}
	if c.RefreshAbsolute == 0 {
		c.RefreshAbsolute = DefaultRefreshAbsolute
	}
	if c.RefreshGrace == 0 {
		c.RefreshGrace = DefaultRefreshGrace
	}
	if c.LoginFailuresPerAccount == 0 {
		c.LoginFailuresPerAccount = DefaultLoginFailuresAccount
	}
	if c.LoginFailuresPerAddress == 0 {
		c.LoginFailuresPerAddress = DefaultLoginFailuresAddress
	}
	if c.LoginWindow == 0 {
		c.LoginWindow = DefaultLoginWindow
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if c.MinFreeDisk == 0 {
		c.MinFreeDisk = DefaultMinFreeDisk
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.HeaderTimeout = cmp.Or(c.HeaderTimeout, DefaultHeaderTimeout)
	c.BodyTimeout = cmp.Or(c.BodyTimeout, DefaultBodyTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.MaxConnections = cmp.Or(c.MaxConnections, DefaultMaxConnections)
	c.MaxPreAuthRequests = cmp.Or(c.MaxPreAuthRequests, DefaultMaxPreAuthRequests)
}

// Server is a running Relais server.
type Server struct {
	cfg      Config
	db       *store.DB
	clock    *syncproto.Clock
	node     string
	accounts *auth.Accounts
	tokens   *auth.Tokens
	refresh  *auth.Refresh
	// loginLimits counts failed logins, for the API and the dashboard.
	loginLimits *auth.LoginLimits
	app         *fiber.App
	// pageNotFound answers, in French, a browser asking for a page that
	// does not exist (the dashboard's; see handleError).
	pageNotFound fiber.Handler
	log          *slog.Logger

	schemaMu sync.RWMutex
	schema   *syncproto.Schema

	// preAuth holds one token per request in a handler whose sender is
	// not authenticated yet (Config.MaxPreAuthRequests).
	preAuth chan struct{}
	// exchanging holds the devices with an exchange in progress.
	exchanging sync.Map

	// rules, on PostgreSQL, runs the domain rules on an in-memory SQLite
	// copy of the rows (pgrules.go); nil on SQLite.
	rules *sqliteRules

	stmts  pushStatements // the push path's statements, kept prepared (prepared.go)
	writes *groupWriter   // exchanges' writes, committed in groups (groupwrite.go)
	notes  pullNotes      // when devices in the middle of a pull were last noted (sync.go)

	metrics *metrics // Prometheus collectors (metrics.go)
	history history  // the history identity every answer carries (backup.go)
}

// readCacheKiB is the server's read pool's page cache, all readers
// together: a coordinator's first pull of a 50k-activity département
// (a 67 MB file) took a tenth less CPU with 32 MiB per reader than with
// SQLite's 2 MiB, and no less with 128 MiB (BENCHMARKS.md section 10).
const readCacheKiB = 64 << 10

// DBPath is where the server keeps its database inside the data directory.
func DBPath(dataDir string) string { return filepath.Join(dataDir, "relais.db") }

// OpenDB opens the server database in dataDir and brings its schema up to
// date. The admin commands use it too, while the server runs.
func OpenDB(ctx context.Context, dataDir string) (*store.DB, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	// secure_delete: erased personal data must not linger in free pages.
	db, err := store.Open(DBPath(dataDir), store.Options{SecureDelete: true, ReadCacheKiB: readCacheKiB})
	if err != nil {
		return nil, err
	}
	if err := migrations.Up(ctx, db.W, migrations.Replica, migrations.Domain, migrations.Server); err != nil {
		db.Close()
		return nil, err
	}
	if _, err := replica.Init(ctx, db.W); err != nil {
		db.Close()
		return nil, err
	}
	if err := ensureHistory(ctx, db.W); err != nil {
		db.Close()
		return nil, err
	}
	if err := tagOwners(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// tagOwners tags with their row's owner the cells that lack the tag pulls
// read by: all of them the first time a database written before tags
// existed is opened, and afterwards none, or the few a bulk writer left.
func tagOwners(ctx context.Context, db *store.DB) error {
	schema, err := replica.LoadSchema(ctx, db.R)
	if err != nil {
		return err
	}
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("tag owners: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for table, col := range scope.NewRules(schema).OwnerColumns() {
		if _, err := replica.TagOwners(ctx, tx, schema, table, col); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("tag owners: %w", err)
	}
	return nil
}

// New opens the data directory, or the PostgreSQL database of
// cfg.Store, and builds the server.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.defaults()
	var db *store.DB
	var err error
	switch {
	case pgstore.IsPostgresURL(cfg.Store):
		db, err = OpenPostgres(ctx, cfg.Store)
	case cfg.Store != "":
		err = fmt.Errorf("store %q: a postgres:// address is expected — une adresse postgres://UTILISATEUR@HOTE/BASE est attendue", cfg.Store)
	default:
		db, err = OpenDB(ctx, cfg.DataDir)
	}
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, db: db, log: cfg.Logger}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.metrics = newMetrics(s)
	s.writes = newGroupWriter(db.W, maxGroupWrites)
	s.writes.observe = func(wait time.Duration) { s.metrics.writerWait.Observe(wait.Seconds()) }
	s.writes.observeGroup = func(n int) { s.metrics.writeGroups.Observe(float64(n)) }
	s.app = s.routes()
	return s, nil
}

func (s *Server) init(ctx context.Context) error {
	st, err := replica.Init(ctx, s.db.W)
	if err != nil {
		return err
	}
	s.node = st.Node
	if s.db.Engine == store.Postgres {
		// Several processes share the database: each writes under a
		// node of its own, or two of them could stamp two different
		// writes of one cell with the same version. Its clock starts
		// at the newest version stored (st.HLC, which every merge keeps).
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("server node id: %w", err)
		}
		s.node = id.String()
	}
	if s.history, err = readHistory(ctx, s.db.R); err != nil {
		return err
	}
	if s.cfg.Node != "" {
		s.node = s.cfg.Node
	}
	s.clock = syncproto.NewClock(s.cfg.Now, st.HLC, s.cfg.MaxClockAhead)
	if s.schema, err = LoadSchema(ctx, s.db); err != nil {
		return err
	}
	if s.db.Engine == store.Postgres {
		if s.rules, err = newSQLiteRules(s.schema); err != nil {
			return err
		}
	}
	keys, err := auth.LoadKeys(ctx, s.db.W)
	if err != nil {
		return err
	}
	s.accounts = &auth.Accounts{W: s.db.W, R: s.db.R}
	s.tokens = &auth.Tokens{Keys: keys, Issuer: "relais", Audience: "relais-sync", TTL: s.cfg.AccessTTL, Now: s.cfg.Now}
	// A rotated key verifies the tokens it signed until they expire.
	keys.RetiredVerifyFor, keys.Now = s.cfg.AccessTTL+time.Minute, s.cfg.Now
	s.loginLimits = &auth.LoginLimits{W: s.db.W, R: s.db.R, PerAccount: s.cfg.LoginFailuresPerAccount,
		PerAddress: s.cfg.LoginFailuresPerAddress, Window: s.cfg.LoginWindow, Now: s.cfg.Now}
	s.refresh = &auth.Refresh{W: s.db.W, R: s.db.R, Idle: s.cfg.RefreshIdle, Absolute: s.cfg.RefreshAbsolute,
		Grace: s.cfg.RefreshGrace, Now: s.cfg.Now}
	return nil
}

// App returns the Fiber application, for tests that listen themselves.
func (s *Server) App() *fiber.App { return s.app }

// DB returns the server's database.
func (s *Server) DB() *store.DB { return s.db }

// Schema returns the synced tables' schema.
func (s *Server) Schema() *syncproto.Schema {
	s.schemaMu.RLock()
	defer s.schemaMu.RUnlock()
	return s.schema
}

// Serve listens on addr until ctx is cancelled, then stops taking new
// connections and lets in-flight exchanges finish. The address is bound
// before anything is logged, so a port already in use is the error Serve
// returns, never a "listening" line followed by a failure.
func (s *Server) Serve(ctx context.Context, addr string) error {
	tlsConf, err := s.tlsConfig()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("address %s already in use — l'adresse %s est déjà utilisée par un autre programme: %w", addr, addr, err)
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	return s.ServeListener(ctx, ln)
}

// tlsConfig loads the certificate when TLS is configured (nil when not),
// before anything listens, so that a missing or mismatched file is the
// error Serve returns. Fiber runs on fasthttp, which speaks HTTP/1.1
// only: no HTTP/2, so ALPN offers http/1.1 alone.
func (s *Server) tlsConfig() (*tls.Config, error) {
	if s.cfg.TLSCertFile == "" && s.cfg.TLSKeyFile == "" {
		return nil, nil
	}
	if s.cfg.TLSCertFile == "" || s.cfg.TLSKeyFile == "" {
		return nil, fmt.Errorf("TLS needs both a certificate and its key — il faut le certificat et sa clé (--tls-cert et --tls-key)")
	}
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w", s.cfg.TLSCertFile, s.cfg.TLSKeyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}, nil
}

// ServeListener serves on ln (which it closes) until ctx is cancelled.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(ln) }()
	scheme := "http"
	if s.cfg.TLSCertFile != "" {
		scheme = "https"
	}
	s.log.Info("relais server listening", "addr", ln.Addr().String(), "scheme", scheme, "data", s.cfg.DataDir)
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing in-flight requests")
	if err := s.app.ShutdownWithTimeout(30 * time.Second); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// maxGroupWrites bounds the exchanges committed together, so that one
// group's transaction stays short (a push is at most a few thousand
// cells).
const maxGroupWrites = 64

// Close finishes the writes under way and releases the database.
func (s *Server) Close() error {
	if s.writes != nil {
		s.writes.Close()
	}
	if s.rules != nil {
		s.rules.Close()
	}
	return s.db.Close()
}

// LoadSchema reads the synced tables of a server database, SQLite's or
// PostgreSQL's.
func LoadSchema(ctx context.Context, db *store.DB) (*syncproto.Schema, error) {
	if db.Engine == store.Postgres {
		return pgstore.LoadSchema(ctx, db.R)
	}
	return replica.LoadSchema(ctx, db.R)
}

// rulesOn is what the domain rules of a write run on: tx itself on
// SQLite; on PostgreSQL, tx with the check queries sent to a SQLite copy
// of the rows they name (pgrules.go).
func (s *Server) rulesOn(tx domain.Querier) domain.Querier {
	if s.rules == nil {
		return tx
	}
	return s.rules.On(tx)
}

// fail writes a protocol error with the HTTP status its code implies.
func fail(c *fiber.Ctx, err error) error {
	var pe *syncproto.Error
	if !errors.As(err, &pe) {
		return err // Fiber's error handler logs it and answers "internal"
	}
	c.Locals(errCodeKey{}, pe.Code) // for the exchange metrics
	return c.Status(statusOf(pe.Code)).JSON(syncproto.ErrorBody{Error: pe})
}

func statusOf(code syncproto.Code) int {
	switch code {
	case syncproto.CodeUnauthorized, syncproto.CodeTokenExpired, syncproto.CodeBadCredentials:
		return fiber.StatusUnauthorized
	case syncproto.CodeForbidden, syncproto.CodeForbiddenScope, syncproto.CodeDeviceRevoked, syncproto.CodeUserDisabled:
		return fiber.StatusForbidden
	case syncproto.CodeNotFound:
		return fiber.StatusNotFound
	case syncproto.CodeBodyTooLarge:
		return fiber.StatusRequestEntityTooLarge
	case syncproto.CodeRateLimited:
		return fiber.StatusTooManyRequests
	case syncproto.CodeConflict:
		return fiber.StatusConflict
	case syncproto.CodeUnsupportedEncoding:
		return fiber.StatusUnsupportedMediaType
	case syncproto.CodeInternal:
		return fiber.StatusInternalServerError
	}
	return fiber.StatusBadRequest
}
