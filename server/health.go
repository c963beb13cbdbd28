package server

import (
	"context"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store"
)

// DefaultMinFreeDisk is the free space below which the server reports
// itself not ready: SQLite needs room for its WAL and for a checkpoint,
// and a full disk turns every push into an error.
const DefaultMinFreeDisk = 256 << 20

// handleHealthz answers as long as the process serves HTTP: a liveness
// probe, which restarts the process when it fails, must not fail for a
// reason a restart does not cure (a full disk, a busy database).
func (s *Server) handleHealthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// Readiness is the answer of /readyz: whether the server can take
// exchanges now, and each check's verdict ("ok" or what is wrong).
type Readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// handleReadyz answers 200 when the database answers, its schema is up to
// date and the data directory's disk has room; 503 otherwise, saying
// which check failed.
func (s *Server) handleReadyz(c *fiber.Ctx) error {
	r := s.Ready(c.UserContext())
	if !r.Ready {
		c.Status(fiber.StatusServiceUnavailable)
	}
	return c.JSON(r)
}

// Ready runs the readiness checks.
func (s *Server) Ready(ctx context.Context) Readiness {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r := Readiness{Ready: true, Checks: map[string]string{}}
	set := func(name string, err error) {
		if err != nil {
			r.Ready = false
			r.Checks[name] = err.Error()
			return
		}
		r.Checks[name] = "ok"
	}
	// The read pool, not the writer: a long group commit holds the writer
	// and would make a healthy server look unready.
	var seq int64
	dbErr := s.db.R.QueryRowContext(ctx, "SELECT seq FROM _replica WHERE id = 1").Scan(&seq)
	if dbErr != nil {
		dbErr = fmt.Errorf("database unreachable: %w", dbErr)
	}
	set("database", dbErr)
	if dbErr != nil {
		set("migrations", fmt.Errorf("not checked: database unreachable"))
	} else {
		set("migrations", s.migrationsApplied(ctx))
	}
	set("disk", s.diskRoom())
	return r
}

// migrationsApplied checks that every migration set is at the version
// this binary embeds.
func (s *Server) migrationsApplied(ctx context.Context) error {
	for _, set := range []migrations.Set{migrations.Replica, migrations.Domain, migrations.Server} {
		want, err := migrations.Latest(set)
		if err != nil {
			return err
		}
		got, err := migrations.Version(ctx, s.db.R, set)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("migrations %s at version %d, this binary expects %d", set, got, want)
		}
	}
	return nil
}

// diskRoom checks the free space of the data directory's file system
// against the configured floor (none when the floor is negative).
func (s *Server) diskRoom() error {
	if s.cfg.MinFreeDisk < 0 || s.db.Engine == store.Postgres {
		// PostgreSQL's disk is its own to watch (and its operators').
		return nil
	}
	free, err := freeBytes(s.cfg.DataDir)
	if err != nil {
		return err
	}
	if free >= 0 && free < s.cfg.MinFreeDisk {
		return fmt.Errorf("%d MiB free on the data directory's disk, below the floor of %d MiB", free>>20, s.cfg.MinFreeDisk>>20)
	}
	return nil
}
