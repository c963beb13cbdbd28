package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/server"
)

func runServe(ctx context.Context, args []string, e *env) error {
	fs := newFlags("serve", e)
	data := fs.text(setData)
	storeURL := fs.text(setStore)
	addr := fs.text(setAddr)
	ahead := fs.duration(setMaxClockAhead)
	retention := fs.duration(setRetention)
	accessTTL := fs.duration(setAccessTTL)
	refreshIdle := fs.duration(setRefreshIdle)
	refreshAbsolute := fs.duration(setRefreshAbsolute)
	minFree := fs.int64(setMinFreeDisk)
	metricsAllow := fs.text(setMetricsAllow)
	metricsTokenFile := fs.text(setMetricsTokenFile)
	trusted := fs.text(setTrustedProxy)
	tlsCert := fs.text(setTLSCert)
	tlsKey := fs.text(setTLSKey)
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("argument inattendu « %s »", fs.Arg(0))
	}
	allow, err := parsePrefixes(*metricsAllow)
	if err != nil {
		return usagef("--metrics-allow : %v", err)
	}
	var proxies []netip.Prefix
	if strings.TrimSpace(*trusted) != "" {
		if proxies, err = parsePrefixes(*trusted); err != nil {
			return usagef("--trusted-proxy : %v", err)
		}
	}
	var metricsToken string
	if *metricsTokenFile != "" {
		b, err := os.ReadFile(*metricsTokenFile)
		if err != nil {
			return fmt.Errorf("jeton des métriques : %w", err)
		}
		if metricsToken = strings.TrimSpace(string(b)); metricsToken == "" {
			return usagef("--metrics-token-file : le fichier %s est vide", *metricsTokenFile)
		}
	}
	pg, err := (place{data: data, store: storeURL}).postgres()
	if err != nil {
		return err
	}
	var storeAddr string
	if pg {
		// Several servers share a PostgreSQL database: no data
		// directory to hold, each process writes under a node of its own.
		storeAddr = *storeURL
	} else {
		// One server per data directory, checked before the database is
		// even opened; the lock lasts as long as this process.
		lock, err := server.LockDataDir(*data)
		if err != nil {
			return err
		}
		defer lock.Release() //nolint:errcheck // the process exits next
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, nil))
	// The web SDK builds its replica from the Go SDK's SQL (GET /v1/device/schema).
	schema, err := device.SchemaJSON(ctx)
	if err != nil {
		return fmt.Errorf("démarrage impossible : %w", err)
	}
	srv, err := server.New(ctx, server.Config{DeviceSchema: schema, DataDir: *data, Store: storeAddr, MaxClockAhead: *ahead, Logger: log,
		AccessTTL: *accessTTL, RefreshIdle: *refreshIdle, RefreshAbsolute: *refreshAbsolute,
		MinFreeDisk: diskFloor(*minFree), MetricsAllow: allow, MetricsToken: metricsToken,
		TrustedProxies: proxies, TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey})
	if err != nil {
		return fmt.Errorf("démarrage impossible : %w", err)
	}
	defer srv.Close()
	if *retention > 0 {
		go srv.RetentionLoop(ctx, 24*time.Hour, *retention)
	}
	return srv.Serve(ctx, *addr)
}

// diskFloor turns the --min-free-disk-mb flag into bytes; -1 (any
// negative value) turns the check off.
func diskFloor(mib int64) int64 {
	if mib < 0 {
		return -1
	}
	return max(min(mib, 1<<40)<<20, 1) // 0 MiB is a floor of one byte, not the default
}

// parsePrefixes reads a comma-separated list of addresses and CIDR
// ranges; an address alone is a range of one.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("« %s » n'est ni une adresse ni une plage CIDR", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("aucune adresse")
	}
	return out, nil
}
