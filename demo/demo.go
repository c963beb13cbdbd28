// Package demo fills a Relais server with a realistic, deterministic
// département: the Mayenne's communes (real INSEE codes), France
// Services, médiathèques, centres sociaux and the PANDA tricycle in
// Laval, about twenty conseillers numériques and their coordinator,
// senior-heavy beneficiaries, and two years of activities in the Coop's
// model (home visits, permanences, workshops, administrative help).
//
// Everything is drawn from one seeded generator, so the same seed, size
// and end date give the same rows, ids included. Rows are written
// through the merge engine (replica.Apply) in one transaction, with
// versions stamped at the time each row was "recorded" by its
// conseiller's tablet, so they get pull sequence numbers like any push
// and the retention job sees their true age. Tests and benchmarks call
// Generate directly; `relais demo` is its command line.
package demo

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/server/auth"
	"github.com/relais-numerique/relais/store"
	"github.com/relais-numerique/relais/syncproto"
)

// DefaultActivities is the size of a département like the Mayenne over
// two years.
const DefaultActivities = 50000

// DefaultPassword is the password of every demo account. It is printed
// by `relais demo`: the demo is for trying Relais, never for real data.
const DefaultPassword = "demo-relais-53"

// DefaultUntil ends the two generated years. It is fixed, not "today",
// so that a seed always gives the same data.
var DefaultUntil = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// Options says what to generate. Zero values take the defaults.
type Options struct {
	// Departement must be "53" (the Mayenne), the only one described.
	Departement string
	Seed        uint64
	// Activities is the number of activities to aim for (about; the
	// daily counts are random). Conseillers scale with it above the
	// default, so each keeps a realistic load.
	Activities int
	// Until is the end of the two years (exclusive).
	Until time.Time
	// Accounts creates a login for each conseiller, the coordinator and
	// an administrator, with Password. Hashing passwords takes a second
	// or two; tests that only need rows leave it off.
	Accounts bool
	// Force lets GenerateDir write into a data directory that has
	// accounts of its own (not the demo's): without it, it refuses, since
	// the demo's accounts share one published password.
	Force    bool
	Password string
	// Progress, when set, is told as each conseiller's two years start
	// being generated: done of total conseillers, activities so far.
	Progress func(done, total, activities int)
}

func (o *Options) defaults() error {
	if o.Departement == "" {
		o.Departement = "53"
	}
	if o.Departement != "53" {
		return fmt.Errorf("demo: seul le département 53 (Mayenne) est décrit, pas %q", o.Departement)
	}
	if o.Activities == 0 {
		o.Activities = DefaultActivities
	}
	if o.Activities < 0 {
		return fmt.Errorf("demo: the number of activities must be positive, not %d", o.Activities)
	}
	if o.Until.IsZero() {
		o.Until = DefaultUntil
	}
	o.Until = time.Date(o.Until.Year(), o.Until.Month(), o.Until.Day(), 0, 0, 0, 0, time.UTC)
	if o.Password == "" {
		o.Password = DefaultPassword
	}
	return nil
}

// Account is a demo login.
type Account struct {
	Email, Role, Name, ID string
}

// Summary says what Generate wrote.
type Summary struct {
	Conseillers, Structures, Beneficiaires, Activites, Accompagnements int
	RendezVous, ParticipantsAnonymes, ActivitesCoordination, Cells     int
	// HomeVisits counts individual activities at the beneficiary's home.
	HomeVisits int
	// Devices and Conflicts are the fleet and the conflict log written
	// with the accounts (see fleet.go).
	Devices, Conflicts int
	Accounts           []Account
	From               time.Time
	Until              time.Time
	Took               time.Duration
}

// DemoDomain is the e-mail domain of every demo account.
const DemoDomain = "demo.relais.fr"

// GenerateDir opens (creating if needed) a server data directory and
// generates into it.
func GenerateDir(ctx context.Context, dataDir string, opt Options) (Summary, error) {
	db, err := server.OpenDB(ctx, dataDir)
	if err != nil {
		return Summary{}, err
	}
	defer db.Close()
	return GenerateStore(ctx, db, opt)
}

// GenerateStore writes a département into an open server database, a
// data directory's SQLite or a PostgreSQL store (server.OpenPostgres),
// refusing one that holds accounts other than the demo's unless
// opt.Force.
func GenerateStore(ctx context.Context, db *store.DB, opt Options) (Summary, error) {
	if opt.Accounts && !opt.Force {
		var others int
		if err := db.R.QueryRowContext(ctx, "SELECT COUNT(*) FROM _users WHERE email NOT LIKE ?", "%@"+DemoDomain).Scan(&others); err != nil {
			return Summary{}, fmt.Errorf("demo: read the accounts already there: %w", err)
		}
		if others > 0 {
			return Summary{}, fmt.Errorf("cette base contient déjà %d compte(s) qui ne sont pas ceux de la démonstration : "+
				"la démonstration y ajouterait des comptes au mot de passe public. Choisissez un répertoire ou une base neufs, ou ajoutez --force", others)
		}
	}
	sum, err := Generate(ctx, db, opt)
	if err != nil || db.Engine != store.SQLite {
		return sum, err
	}
	// The generation's one large transaction leaves a write-ahead log
	// about as large as the database: copy it back and empty it, so the
	// directory holds what the data needs and nothing more.
	if _, err := db.W.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return sum, fmt.Errorf("demo: checkpoint: %w", err)
	}
	return sum, nil
}

// Generate writes a département into a server database (opened with
// server.OpenDB, so its schema is current) in one transaction.
func Generate(ctx context.Context, db *store.DB, opt Options) (Summary, error) {
	return generate(ctx, db, opt, false)
}

func generate(ctx context.Context, db *store.DB, opt Options, viaApply bool) (Summary, error) {
	start := time.Now()
	if err := opt.defaults(); err != nil {
		return Summary{}, err
	}
	schema, err := server.LoadSchema(ctx, db)
	if err != nil {
		return Summary{}, err
	}
	for _, t := range []string{"structure", "beneficiaire", "activite", "accompagnement", "rendez_vous",
		"participants_anonymes", "activite_coordination", "coordination", "mediateur_en_activite"} {
		if _, ok := schema.Tables[t]; !ok {
			return Summary{}, fmt.Errorf("demo: the database has no table %s; is its schema current?", t)
		}
	}
	g := newGen(opt, schema)
	g.viaApply = viaApply
	g.plan()
	// One big transaction: let SQLite keep its dirty pages in memory
	// rather than spill them to the WAL over and over (a connection
	// setting; the writer pool has one connection). Restored after.
	if db.Engine == store.SQLite {
		var cache int64
		if err := db.W.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&cache); err != nil {
			return Summary{}, fmt.Errorf("demo: %w", err)
		}
		if _, err := db.W.ExecContext(ctx, "PRAGMA cache_size = -262144"); err != nil {
			return Summary{}, fmt.Errorf("demo: %w", err)
		}
		defer db.W.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA cache_size = %d", cache)) //nolint:errcheck // best effort
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		g.ctx, g.db, g.tx = ctx, db, tx
		if g.viaApply {
			if err := g.run(); err != nil {
				return err
			}
			return g.flush()
		}
		var there int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM _rows WHERE tbl = (SELECT id FROM _tables WHERE name = 'structure') AND pk = "+replica.PKSQL("?"), g.placeIDs[0]).Scan(&there); err != nil {
			return err
		}
		if there > 0 {
			return fmt.Errorf("cette base contient déjà les données de démonstration de la graine %d", opt.Seed)
		}
		if g.bulk, err = newBulk(ctx, tx, db, schema); err != nil {
			return err
		}
		if err := g.run(); err != nil {
			return err
		}
		return g.bulk.finish()
	})
	if err != nil {
		return Summary{}, fmt.Errorf("demo: %w", err)
	}
	if opt.Accounts {
		if err := g.accounts(ctx, db); err != nil {
			return Summary{}, err
		}
		if err := g.fleet(ctx, db); err != nil {
			return Summary{}, err
		}
	}
	g.sum.Took = time.Since(start)
	return g.sum, nil
}

// person is a member of staff of the demo.
type person struct {
	Name, Email, ID, Node string
	// Profile shapes where they work: permanence, domicile or panda.
	Profile string
	Places  []int // indexes into places
	// Catchment is the communes their beneficiaries live in, with weights.
	Catchment []int
	Weights   []float64
	From, To  time.Time
	Workshops float64 // share of collective workshops
	pool      []*benef
}

type benef struct {
	ID        string
	Commune   int
	Adresse   string
	Anonyme   bool
	Accompagn int
}

type gen struct {
	opt    Options
	rng    *rand.Rand
	schema *syncproto.Schema
	ctx    context.Context
	db     *store.DB // where the rows go (SQLite or PostgreSQL)
	tx     *sql.Tx
	from   time.Time
	now    time.Time

	placeIDs    []string
	staff       []*person
	coordinator *person
	admin       *person
	changes     []syncproto.Change
	row         []syncproto.Change
	sum         Summary
	// viaApply sends every cell through replica.Apply instead of the
	// bulk writer; tests use it to check that both write the same.
	viaApply bool
	bulk     *bulk
}

func newGen(opt Options, schema *syncproto.Schema) *gen {
	return &gen{
		opt:    opt,
		rng:    rand.New(rand.NewPCG(opt.Seed, 0x4d617965_6e6e6535)),
		schema: schema,
		from:   opt.Until.AddDate(-2, 0, 0),
		now:    time.Now(),
	}
}

// uuidAt makes a UUIDv7 from the generator: the creation time in its
// first 48 bits, as a device would, and seeded randomness in the rest.
func (g *gen) uuidAt(t time.Time) string { return UUIDv7At(g.rng, t) }

// UUIDv7At makes a UUIDv7 for time t from rng: the creation time in its
// first 48 bits, as a device would, and seeded randomness in the rest, so
// generated keys sort by creation time like real ones and runs repeat.
func UUIDv7At(rng *rand.Rand, t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	r1, r2 := rng.Uint64(), rng.Uint64()
	for i := 6; i < 16; i++ {
		if i < 11 {
			b[i] = byte(r1 >> (8 * (i - 6)))
		} else {
			b[i] = byte(r2 >> (8 * (i - 11)))
		}
	}
	b[6] = 0x70 | b[6]&0x0f
	b[8] = 0x80 | b[8]&0x3f
	return uuid.UUID(b).String()
}

func (g *gen) pick(s []string) string { return s[g.rng.IntN(len(s))] }

func (g *gen) chance(p float64) bool { return g.rng.Float64() < p }

// weighted returns an index drawn with the given weights.
func (g *gen) weighted(w []float64) int {
	total := 0.0
	for _, x := range w {
		total += x
	}
	r := g.rng.Float64() * total
	for i, x := range w {
		if r < x {
			return i
		}
		r -= x
	}
	return len(w) - 1
}

func (g *gen) poisson(lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= g.rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// emit writes one row's cells, stamped as written at "at" by node.
func (g *gen) emit(table, id string, at time.Time, node string, vals map[string]any) error {
	if at.After(g.now) {
		at = g.now // never stamp a version in the future
	}
	ver := syncproto.Version{HLC: syncproto.FromTime(at), Node: node}
	row := g.row[:0]
	// Columns in order, so that sequence numbers are deterministic too.
	for _, col := range slices.Sorted(maps.Keys(vals)) {
		v := vals[col]
		if v == nil {
			continue
		}
		if n, ok := v.(int); ok {
			v = int64(n)
		}
		if _, ok := g.schema.ColumnType(table, col); !ok {
			return fmt.Errorf("generated a cell for unknown column %s.%s", table, col)
		}
		row = append(row, syncproto.Change{Table: table, PK: id, Column: col, Value: v, Version: ver})
	}
	g.row = row
	g.sum.Cells += len(row)
	if g.viaApply {
		g.changes = append(g.changes, row...)
		if len(g.changes) >= 50000 {
			return g.flush()
		}
		return nil
	}
	return g.bulk.add(table, id, row)
}

// flush applies queued changes through replica.Apply (the slow path
// that the bulk writer is checked against).
func (g *gen) flush() error {
	if len(g.changes) == 0 {
		return nil
	}
	if _, err := replica.Apply(g.ctx, g.tx, g.schema, g.changes, server.OnStore(g.db, server.MergeOptions(g.schema, nil))); err != nil {
		return err
	}
	g.changes = g.changes[:0]
	return nil
}

// accounts creates the demo logins with the ids the rows refer to. An
// account that already exists (a second run) is left as it is.
func (g *gen) accounts(ctx context.Context, db *store.DB) error {
	acc := &auth.Accounts{W: db.W, R: db.R}
	all := append([]*person{g.admin, g.coordinator}, g.staff...)
	for _, p := range all {
		role := auth.RoleConseiller
		switch p {
		case g.admin:
			role = auth.RoleAdmin
		case g.coordinator:
			role = auth.RoleCoordinateur
		}
		g.sum.Accounts = append(g.sum.Accounts, Account{Email: p.Email, Role: role, Name: p.Name, ID: p.ID})
		if _, err := acc.UserByEmail(ctx, p.Email); err == nil {
			continue
		}
		u, err := acc.AddUser(ctx, p.Email, role, g.opt.Password)
		if err != nil {
			return fmt.Errorf("demo account %s: %w", p.Email, err)
		}
		if err := acc.SetName(ctx, p.Email, p.Name); err != nil {
			return fmt.Errorf("demo account %s: %w", p.Email, err)
		}
		// The generated rows name the user by a seeded id; the account
		// takes that id (nothing refers to the fresh one yet).
		if _, err := db.W.ExecContext(ctx, "UPDATE _users SET id = ? WHERE id = ?", p.ID, u.ID); err != nil {
			return fmt.Errorf("demo account %s: %w", p.Email, err)
		}
	}
	return nil
}
