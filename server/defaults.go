package server

import "time"

// The defaults of Config, exported so that the command line shows and
// documents the very values the server falls back to: there is one
// source for each.
const (
	DefaultDataDir       = "./relais-data"
	DefaultAddr          = "127.0.0.1:8080"
	DefaultMaxClockAhead = 5 * time.Minute
	DefaultBodyLimit     = 8 << 20
	// DefaultDecompressRatio bounds a body once decompressed, as a
	// multiple of BodyLimit.
	DefaultDecompressRatio      = 4
	DefaultAccessTTL            = 15 * time.Minute
	DefaultRefreshIdle          = 60 * 24 * time.Hour
	DefaultRefreshAbsolute      = 365 * 24 * time.Hour
	DefaultRefreshGrace         = 2 * time.Minute
	DefaultLoginFailuresAccount = 10
	DefaultLoginFailuresAddress = 50
	DefaultLoginWindow          = 15 * time.Minute

	// DefaultHeaderTimeout is how long a client has to send a request's
	// headers (and a body-less request whole); DefaultBodyTimeout how
	// long, counted from its headers, to send a body: 8 MiB over a link of
	// 600 kbit/s. DefaultWriteTimeout bounds sending an answer,
	// DefaultIdleTimeout a kept-alive connection between requests.
	DefaultHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout   = 2 * time.Minute
	DefaultWriteTimeout  = 2 * time.Minute
	DefaultIdleTimeout   = time.Minute
	// DefaultMaxConnections bounds open connections; a connection waiting
	// for its headers or its body costs a few tens of kilobytes.
	DefaultMaxConnections = 1024
	// DefaultMaxPreAuthRequests bounds requests in a handler whose sender
	// is not yet authenticated (logins, refreshes, refused tokens); more
	// are answered rate_limited at once.
	DefaultMaxPreAuthRequests = 64
)
