package sim

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
)

// templateTokenTTL outlives the longest campaign: the runs reuse the
// template's access tokens, and token expiry is not what the simulation
// is about.
const templateTokenTTL = 10000 * time.Hour

// MaxDevices is the largest number of devices a run may have.
const MaxDevices = 8

const (
	simEmail    = "admin@sim.relais.test"
	simPassword = "mot-de-passe-simulation"
	// The conseillère's account, whose device writes under the scope
	// rules (see World.conseillere).
	simConseillere = "conseillere@sim.relais.test"
	// conseillereDevice is her replica's file in the template.
	conseillereDevice = "c.db"
)

// Template is a prepared world at rest: a server data directory with an
// administrator account, and MaxDevices device replicas logged in to it.
// Preparing it costs migrations and bcrypt hashes once; each run copies
// its files.
type Template struct {
	dir     string
	devices []string
	// admin and conseillere are the accounts' user ids.
	admin, conseillere string
	// store is the PostgreSQL database holding the template's server
	// state, when the runs' servers keep theirs there (NewTemplateOn);
	// each run gets a copy made by PostgreSQL (CREATE DATABASE …
	// TEMPLATE).
	store string
}

// NewTemplate prepares a template in dir. The devices log in through the
// same in-memory network as the runs, with no faults.
func NewTemplate(ctx context.Context, dir string) (*Template, error) {
	return NewTemplateOn(ctx, dir, "")
}

// NewTemplateOn prepares a template whose server state is in the
// PostgreSQL database at storeURL (an empty database the runs copy), or
// in dir when storeURL is empty.
func NewTemplateOn(ctx context.Context, dir, storeURL string) (*Template, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("sim template: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sim template: %w", err)
	}
	srv, err := server.New(ctx, server.Config{
		DataDir:   filepath.Join(dir, "server"),
		Store:     storeURL,
		AccessTTL: templateTokenTTL,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, fmt.Errorf("sim template: %w", err)
	}
	defer srv.Close()
	a := &auth.Accounts{W: srv.DB().W, R: srv.DB().R}
	admin, err := a.AddUser(ctx, simEmail, "admin", simPassword)
	if err != nil {
		return nil, fmt.Errorf("sim template: add user: %w", err)
	}
	cons, err := a.AddUser(ctx, simConseillere, "conseiller", simPassword)
	if err != nil {
		return nil, fmt.Errorf("sim template: add user: %w", err)
	}
	w := &World{ctx: ctx, srv: srv, batches: map[batchKey]*batchInfo{}, refusals: map[string]int{}, faults: map[string]int{}}
	t := &Template{dir: dir, admin: admin.ID, conseillere: cons.ID, store: storeURL}
	for i := 0; i <= MaxDevices; i++ {
		name, email := fmt.Sprintf("d%d.db", i), simEmail
		if i == MaxDevices {
			name, email = conseillereDevice, simConseillere
		}
		d := &Device{name: name}
		d.link = &link{w: w, dev: d}
		r, err := device.Open(ctx, filepath.Join(dir, name), device.Options{HTTPClient: &http.Client{Transport: d.link}})
		if err != nil {
			return nil, fmt.Errorf("sim template: %w", err)
		}
		err = r.Login(ctx, "http://relais.sim", email, simPassword)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("sim template: login %s: %w", name, err)
		}
		if i < MaxDevices {
			t.devices = append(t.devices, name)
		}
	}
	return t, nil
}

// copyTo lays a fresh copy of the template's server and first n devices
// in dir. On PostgreSQL the server's copy is a database named after dir,
// whose address it returns.
func (t *Template) copyTo(ctx context.Context, dir string, n int) (string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "server"), 0o700); err != nil {
		return "", fmt.Errorf("sim: %w", err)
	}
	var files []string
	storeURL := ""
	if t.store != "" {
		var err error
		if storeURL, err = t.copyStore(ctx, dir); err != nil {
			return "", err
		}
	} else {
		files = append(files, filepath.Join("server", "relais.db"))
	}
	files = append(files, t.devices[:n]...)
	files = append(files, conseillereDevice)
	for _, f := range files {
		for _, suffix := range []string{"", "-wal"} {
			data, err := os.ReadFile(filepath.Join(t.dir, f+suffix))
			if os.IsNotExist(err) && suffix != "" {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("sim: copy template: %w", err)
			}
			if err := os.WriteFile(filepath.Join(dir, f+suffix), data, 0o600); err != nil {
				return "", fmt.Errorf("sim: copy template: %w", err)
			}
		}
	}
	return storeURL, nil
}

// copyStore makes the run's database, a copy of the template's named
// after the run's directory (dropped first: a worker's runs reuse it).
func (t *Template) copyStore(ctx context.Context, dir string) (string, error) {
	u, err := url.Parse(t.store)
	if err != nil {
		return "", fmt.Errorf("sim: template store: %w", err)
	}
	tpl := strings.TrimPrefix(u.Path, "/")
	name := tpl + "_" + filepath.Base(dir)
	u.Path = "/postgres"
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return "", fmt.Errorf("sim: copy template: %w", err)
	}
	defer db.Close()
	for _, q := range []string{`DROP DATABASE IF EXISTS "` + name + `" WITH (FORCE)`, `CREATE DATABASE "` + name + `" TEMPLATE "` + tpl + `"`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return "", fmt.Errorf("sim: copy template: %s: %w", q, err)
		}
	}
	u.Path = "/" + name
	return u.String(), nil
}

// dropStore drops a run's database once the run is over.
func (t *Template) dropStore(ctx context.Context, storeURL string) error {
	u, err := url.Parse(storeURL)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres"
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
	return err
}
