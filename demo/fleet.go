package demo

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"github.com/relais-numerique/relais/replica"
	"github.com/relais-numerique/relais/syncproto"
	"slices"
	"time"

	"github.com/relais-numerique/relais/migrations"
	"github.com/relais-numerique/relais/store"
)

// The demo's fleet: each conseiller's tablet (the node that wrote their
// rows), a telephone for some, a few devices silent for days with writes
// waiting, and a few real conflicts between the two devices of one
// conseillère, so that the Flotte and Conflits pages show what they are
// for.

// demoDevice is one enrolled device of the demo.
type demoDevice struct {
	id, name string
	owner    *person
}

// fleet writes the devices and the conflicts. It runs after the rows and
// the accounts exist; times are counted back from the end of the demo.
func (g *gen) fleet(ctx context.Context, db *store.DB) error {
	end := g.opt.Until
	if end.After(g.now) {
		end = g.now
	}
	schemaVersion, err := migrations.Latest(migrations.Domain)
	if err != nil {
		return err
	}
	var devices []demoDevice
	err = db.Write(ctx, func(tx *sql.Tx) error {
		for i, p := range g.staff {
			if p.To.Before(g.opt.Until) {
				continue // left before the end: her tablet went back to the structure
			}
			enrolled := p.From.Add(time.Duration(g.rng.IntN(72)) * time.Hour)
			tablet := demoDevice{id: p.Node, name: "Tablette", owner: p}
			devices = append(devices, tablet)
			// Most synced within the last hours; every seventh has been
			// silent for one to six weeks, with writes waiting on it.
			silence := time.Duration(g.rng.IntN(20*60)) * time.Minute
			var pending int64
			if i%7 == 3 {
				silence = time.Duration(8+g.rng.IntN(35)) * 24 * time.Hour
				pending = int64(5 + g.rng.IntN(60))
			}
			seen := end.Add(-silence)
			if err := insertDevice(ctx, tx, tablet, schemaVersion, enrolled, seen, pending, int64(g.rng.IntN(3000)-1500)); err != nil {
				return err
			}
			if i%4 == 1 {
				phone := demoDevice{id: g.uuidAt(enrolled.AddDate(0, 2, 0)), name: "Téléphone", owner: p}
				devices = append(devices, phone)
				seen := end.Add(-time.Duration(1+g.rng.IntN(96)) * time.Hour)
				if err := insertDevice(ctx, tx, phone, schemaVersion, enrolled.AddDate(0, 2, 0), seen, 0, int64(g.rng.IntN(800)-400)); err != nil {
					return err
				}
			}
		}
		g.sum.Devices = len(devices)
		return g.conflicts(ctx, tx, devices, end)
	})
	if err != nil {
		return fmt.Errorf("demo fleet: %w", err)
	}
	return nil
}

func insertDevice(ctx context.Context, tx *sql.Tx, d demoDevice, schemaVersion int64, enrolled, seen time.Time, pending, offsetMs int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO _devices (id, user_id, name, created_at, last_seen_at, last_sync_at,
		pending, app_version, schema_version, clock_offset_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 'relais-android 1.4.2', ?, ?)
		ON CONFLICT DO NOTHING`,
		d.id, d.owner.ID, d.name, enrolled.UnixMilli(), seen.UnixMilli(), seen.UnixMilli(), pending, schemaVersion, offsetMs)
	return err
}

// conflicts records, for conseillères with a tablet and a telephone, a
// few fields of their recent activities that both devices wrote while
// offline: the tablet's write won (it holds the later version, the one
// in the data), the telephone's lost and is kept in the log, as the
// merge would have recorded it.
func (g *gen) conflicts(ctx context.Context, tx *sql.Tx, devices []demoDevice, end time.Time) error {
	phones := map[*person]demoDevice{}
	for _, d := range devices {
		if d.name == "Téléphone" {
			phones[d.owner] = d
		}
	}
	// Each node's three newest writes to these columns of activities.
	type cell struct {
		pk, col string
		val     any
		hlc     int64
	}
	newest := map[string][]cell{}
	err := replica.EachCell(ctx, tx, g.schema, func(c syncproto.Change, _ int64) error {
		if c.Table != "activite" || (c.Column != "duree" && c.Column != "commune" && c.Column != "notes") {
			return nil
		}
		list := append(newest[c.Version.Node], cell{c.PK, c.Column, c.Value, int64(c.Version.HLC)})
		slices.SortStableFunc(list, func(a, b cell) int { return cmp.Compare(b.hlc, a.hlc) })
		newest[c.Version.Node] = list[:min(len(list), 3)]
		return nil
	})
	if err != nil {
		return err
	}
	made := 0
	for _, p := range g.staff {
		phone, ok := phones[p]
		if !ok || made >= 8 {
			continue
		}
		cells := newest[p.Node]
		for i, c := range cells {
			if i >= 2 {
				break
			}
			loser := g.otherValue(c.col, c.val)
			if loser == nil {
				continue
			}
			detected := end.Add(-time.Duration(2+g.rng.IntN(240)) * time.Hour)
			_, err := tx.ExecContext(ctx, `INSERT INTO _conflicts (tbl, pk, col, winner_val, winner_hlc, winner_node,
				loser_val, loser_hlc, loser_node, detected_at) VALUES ('activite', ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT DO NOTHING`,
				c.pk, c.col, c.val, c.hlc, p.Node, loser, c.hlc-int64(1+g.rng.IntN(1<<20)), phone.id, detected.UnixMilli())
			if err != nil {
				return err
			}
			made++
		}
	}
	g.sum.Conflicts = made
	return nil
}

// otherValue is a plausible different value for a field written twice.
func (g *gen) otherValue(col string, v any) any {
	switch col {
	case "duree":
		if n, ok := v.(int64); ok {
			return n + 15*int64(1+g.rng.IntN(3))
		}
	case "commune":
		c := communes[g.rng.IntN(len(communes))].Nom
		if c != v {
			return c
		}
	case "notes":
		return "Rappeler la semaine prochaine pour finir la démarche."
	}
	return nil
}
