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
)
