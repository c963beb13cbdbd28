package server

import (
	"context"
	"crypto/subtle"
	"net/netip"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relais-numerique/relais/syncproto"
)

// DefaultMetricsAllow are the client addresses /metrics answers when
// Config.MetricsAllow is empty: the machine itself.
var DefaultMetricsAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// metrics are the server's Prometheus collectors, in a registry of its
// own: tests run several servers in one process, and each must count its
// own exchanges.
type metrics struct {
	reg *prometheus.Registry

	exchanges   *prometheus.CounterVec // by outcome and error code
	latency     prometheus.Histogram
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	applied     prometheus.Counter
	conflicts   prometheus.Counter
	refusals    *prometheus.CounterVec // by error code
	pullLag     prometheus.Histogram
	writerWait  prometheus.Histogram
	writeGroups prometheus.Histogram
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.exchanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relais_exchanges_total",
		Help: "Sync exchanges (POST /v1/sync) by outcome (ok, refused: a protocol error answered 4xx, error: 5xx) and error code (none when ok).",
	}, []string{"outcome", "code"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "relais_exchange_duration_seconds",
		Help:    "Time from an exchange's request read to its answer written, authentication included.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	})
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relais_exchange_received_bytes_total",
		Help: "Bytes of exchange request bodies as received (compressed when the device compressed them).",
	})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relais_exchange_sent_bytes_total",
		Help: "Bytes of exchange answer bodies as sent (compressed when gzip was accepted).",
	})
	m.applied = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relais_changes_applied_total",
		Help: "Pushed cell changes that won the merge and were written (a batch replayed after a lost answer counts once).",
	})
	m.conflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "relais_conflicts_recorded_total",
		Help: "Concurrent writes recorded in the conflict log by pushes.",
	})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relais_refusals_total",
		Help: "Pushed batches refused, by error code (invalid_row, forbidden_scope, clock_ahead, bad_change, ...).",
	}, []string{"code"})
	m.pullLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "relais_pull_lag_cells",
		Help:    "After each exchange's pull, how many sequence numbers the device's cursor is behind the server's newest (0: caught up).",
		Buckets: []float64{0, 10, 100, 1000, 10000, 100000, 1000000},
	})
	m.writerWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "relais_writer_wait_seconds",
		Help:    "Time an exchange's write waits for the single SQLite writer before it runs (group commit).",
		Buckets: []float64{0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	})
	m.writeGroups = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "relais_write_group_size",
		Help:    "Exchanges' writes committed together in one transaction.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
	})
	for _, c := range []prometheus.Collector{m.exchanges, m.latency, m.bytesIn, m.bytesOut, m.applied,
		m.conflicts, m.refusals, m.pullLag, m.writerWait, m.writeGroups} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "relais_devices_seen_last_day",
		Help: "Enrolled devices that made an exchange in the last 24 hours.",
	}, s.devicesSeenLastDay))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "relais_sequence",
		Help: "The server's newest pull sequence number (cells written or re-announced so far).",
	}, s.headSeq))
	f(collectors.NewDBStatsCollector(s.db.R, "relais_read"))
	f(collectors.NewDBStatsCollector(s.db.W, "relais_write"))
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (s *Server) devicesSeenLastDay() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var n int64
	since := s.cfg.Now().Add(-24 * time.Hour).UnixMilli()
	if err := s.db.R.QueryRowContext(ctx, "SELECT COUNT(*) FROM _devices WHERE last_seen_at >= ?", since).Scan(&n); err != nil {
		s.log.Warn("metrics: count devices seen", "err", err)
		return -1
	}
	return float64(n)
}

func (s *Server) headSeq() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var seq int64
	if err := s.db.R.QueryRowContext(ctx, "SELECT seq FROM _replica WHERE id = 1").Scan(&seq); err != nil {
		s.log.Warn("metrics: read sequence", "err", err)
		return -1
	}
	return float64(seq)
}

type errCodeKey struct{}

// measureExchange counts and times one POST /v1/sync, whatever its
// outcome: it runs before authentication, so a refused token counts too.
func (s *Server) measureExchange(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	code, _ := c.Locals(errCodeKey{}).(syncproto.Code)
	outcome := "ok"
	switch {
	case err != nil:
		// Not a protocol error: the error handler will answer 500.
		outcome, code = "error", syncproto.CodeInternal
	case code == syncproto.CodeInternal:
		outcome = "error"
	case code != "":
		outcome = "refused"
	default:
		code = "none"
	}
	m := s.metrics
	m.exchanges.WithLabelValues(outcome, string(code)).Inc()
	m.latency.Observe(time.Since(start).Seconds())
	// As on the wire: the declared length, since the body read by then
	// may have been decompressed in place (reqbody.Read).
	in := c.Request().Header.ContentLength()
	if in < 0 {
		in = len(c.Request().Body()) // chunked: the best known
	}
	m.bytesIn.Add(float64(in))
	m.bytesOut.Add(float64(len(c.Response().Body())))
	return err
}

// handleMetrics serves the Prometheus exposition to the allowed
// addresses, and only with the token when one is configured.
func (s *Server) metricsRoute() fiber.Handler {
	h := adaptor.HTTPHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: nil}))
	allow := s.cfg.MetricsAllow
	if len(allow) == 0 {
		allow = DefaultMetricsAllow
	}
	return func(c *fiber.Ctx) error {
		ip, err := netip.ParseAddr(c.IP())
		if err != nil || !allowed(allow, ip.Unmap()) {
			return fail(c, syncproto.Errorf(syncproto.CodeForbidden, "metrics are not served to this address"))
		}
		if s.cfg.MetricsToken != "" {
			tok, _ := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.MetricsToken)) != 1 {
				return fail(c, syncproto.Errorf(syncproto.CodeUnauthorized, "metrics need the bearer token configured with --metrics-token-file"))
			}
		}
		return h(c)
	}
}

func allowed(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
