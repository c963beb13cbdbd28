package domain_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/domain"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
	"github.com/relais-numerique/relais/syncproto"
)

// TestErasureWinsWhateverTheInterleaving: two tablets edit a
// beneficiary's personal fields, sync in any order, and one of them or
// the server erases it at any point. Once everyone has synced, the
// beneficiary is anonymous everywhere and none of the values ever
// written for it is left in any table of either tablet or the server.
func TestErasureWinsWhateverTheInterleaving(t *testing.T) {
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{})
	u := srv.AddUser(t, "prop@exemple.fr", "conseiller", "motdepasse1")
	devs := []*device.Replica{
		srv.LoggedInDevice(t, "a", "prop@exemple.fr", "motdepasse1"),
		srv.LoggedInDevice(t, "b", "prop@exemple.fr", "motdepasse1"),
	}
	iteration := 0
	rapid.Check(t, func(rt *rapid.T) {
		iteration++
		tag := fmt.Sprintf("it%03d", iteration)
		var sec secrets
		secret := func(what string) string {
			s := fmt.Sprintf("%s-%s-%d", tag, what, len(sec))
			sec = append(sec, s)
			return s
		}
		id := newID()
		if _, err := devs[0].DB().ExecContext(ctx, `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom, telephone, notes)
			VALUES (?, ?, 0, ?, ?, ?, ?)`, id, u.ID, secret("prenom"), secret("nom"), secret("tel"), secret("notes")); err != nil {
			rt.Fatal(err)
		}
		syncOK(rt, devs[0])
		syncOK(rt, devs[1])

		steps := rapid.SliceOfN(rapid.IntRange(0, 3), 0, 6).Draw(rt, "steps")
		erasePos := rapid.IntRange(0, len(steps)).Draw(rt, "erase at")
		eraser := rapid.IntRange(0, 2).Draw(rt, "eraser") // device a, device b, or the server
		for i := 0; i <= len(steps); i++ {
			if i == erasePos {
				var err error
				if eraser == 2 {
					err = srv.EraseBeneficiaire(ctx, id)
				} else {
					err = domain.EraseOnDevice(ctx, devs[eraser].DB(), id)
				}
				if err != nil {
					rt.Fatalf("erase by %d: %v", eraser, err)
				}
			}
			if i == len(steps) {
				break
			}
			d := devs[steps[i]%2]
			if steps[i] < 2 {
				col := rapid.SampledFrom(domain.PersonalColumns).Draw(rt, "column")
				_, err := d.DB().ExecContext(ctx, `UPDATE beneficiaire SET "`+col+`" = ? WHERE id = ?`, secret(col), id)
				// Refused where the erasure is already known (anonyme), or
				// while a refused edit's cell has been dropped and the
				// device has not pulled the server's back yet (identifie).
				if err != nil && !strings.Contains(err.Error(), "rule beneficiaire_anonyme") &&
					!strings.Contains(err.Error(), "rule beneficiaire_identifie") {
					rt.Fatalf("edit: %v", err)
				}
			} else {
				syncTolerant(rt, d)
			}
		}
		for range 2 {
			syncTolerant(rt, devs[0])
			syncTolerant(rt, devs[1])
		}
		for i, d := range devs {
			var anon int
			if err := d.DB().QueryRowContext(ctx, "SELECT anonyme FROM beneficiaire WHERE id = ?", id).Scan(&anon); err != nil || anon != 1 {
				rt.Fatalf("device %d: anonyme %d, %v", i, anon, err)
			}
		}
		for name, db := range map[string]*device.Replica{"a": devs[0], "b": devs[1]} {
			if found := sec.findIn(rt, db.DB()); len(found) > 0 {
				rt.Fatalf("device %s keeps %v", name, found)
			}
		}
		if found := sec.findIn(rt, srv.DB().W); len(found) > 0 {
			rt.Fatalf("server keeps %v", found)
		}
	})
}

func syncOK(t *rapid.T, d *device.Replica) {
	if _, err := d.Sync(context.Background()); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// syncTolerant syncs, accepting the refusal of a late edit of an erased
// beneficiary (kept in _rejected, then scrubbed).
func syncTolerant(t *rapid.T, d *device.Replica) {
	_, err := d.Sync(context.Background())
	if err != nil && syncproto.CodeOf(err) != syncproto.CodeInvalidRow {
		t.Fatalf("sync: %v", err)
	}
}
