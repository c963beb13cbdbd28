package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/relais-numerique/relais/server"
)

func init() {
	register("serve", command{"start the server (embedded SQLite)", runServe})
}

func runServe(ctx context.Context, args []string, e *env) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	data := fs.String("data", envOr(e, "RELAIS_DATA", "./relais-data"), "data directory (env RELAIS_DATA)")
	addr := fs.String("addr", envOr(e, "RELAIS_ADDR", "127.0.0.1:8080"), "listen address (env RELAIS_ADDR)")
	ahead := fs.Duration("max-clock-ahead", durationEnv(e, "RELAIS_MAX_CLOCK_AHEAD", 5*time.Minute),
		"refuse changes stamped further ahead of the server clock (env RELAIS_MAX_CLOCK_AHEAD)")
	retention := fs.Duration("retention", durationEnv(e, "RELAIS_RETENTION", server.DefaultRetention),
		"anonymise beneficiaries not updated for this long, checked daily; 0 turns the job off (env RELAIS_RETENTION)")
	accessTTL := fs.Duration("access-ttl", durationEnv(e, "RELAIS_ACCESS_TTL", 15*time.Minute), "life of an access token (env RELAIS_ACCESS_TTL)")
	refreshIdle := fs.Duration("refresh-idle", durationEnv(e, "RELAIS_REFRESH_IDLE", 60*24*time.Hour),
		"a refresh token unused this long no longer works (env RELAIS_REFRESH_IDLE)")
	refreshAbsolute := fs.Duration("refresh-absolute", durationEnv(e, "RELAIS_REFRESH_ABSOLUTE", 365*24*time.Hour),
		"a device must log in again this long after its login (env RELAIS_REFRESH_ABSOLUTE)")
	minFree := fs.Int64("min-free-disk-mb", 256,
		"/readyz answers 503 when the data directory's disk has less free space, in MiB; -1 turns the check off (env RELAIS_MIN_FREE_DISK_MB)")
	if v := e.getenv("RELAIS_MIN_FREE_DISK_MB"); v != "" {
		if err := fs.Set("min-free-disk-mb", v); err != nil {
			return usagef("RELAIS_MIN_FREE_DISK_MB: %v", err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	// One server per data directory, checked before the database is
	// even opened; the lock lasts as long as this process.
	lock, err := server.LockDataDir(*data)
	if err != nil {
		return err
	}
	defer lock.Release() //nolint:errcheck // the process exits next
	log := slog.New(slog.NewJSONHandler(e.stderr, nil))
	srv, err := server.New(ctx, server.Config{DataDir: *data, MaxClockAhead: *ahead, Logger: log,
		AccessTTL: *accessTTL, RefreshIdle: *refreshIdle, RefreshAbsolute: *refreshAbsolute,
		MinFreeDisk: diskFloor(*minFree)})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer srv.Close()
	if *retention > 0 {
		go srv.RetentionLoop(ctx, 24*time.Hour, *retention)
	}
	return srv.Serve(ctx, *addr)
}

func durationEnv(e *env, name string, def time.Duration) time.Duration {
	if v := e.getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// diskFloor turns the --min-free-disk-mb flag into bytes; -1 (any
// negative value) turns the check off.
func diskFloor(mib int64) int64 {
	if mib < 0 {
		return -1
	}
	return max(min(mib, 1<<40)<<20, 1) // 0 MiB is a floor of one byte, not the default
}
