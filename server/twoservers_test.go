package server_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/pgtest"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// TestErasureOnAnotherServerWins: two servers on one database. A tablet
// whose clock runs two minutes fast (within the bound) pushes a
// beneficiary to the first; the second, whose clock never saw that
// exchange, erases the beneficiary. The erasure must win: a server's own
// write is stamped above every version stored, not only above those its
// process has seen (the reliability simulation's two-server mode found
// the erasure losing to the values it erased, seed 150061).
func TestErasureOnAnotherServerWins(t *testing.T) {
	onTwoServers(t, testErasureOnAnotherServerWins)
}

// onTwoServers runs fn with two servers on one database, on each engine:
// one data directory (the admin commands' case), or one PostgreSQL
// database (several servers behind a load balancer).
func onTwoServers(t *testing.T, fn func(t *testing.T, one, two *relaistest.Server)) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		one := relaistest.StartServer(t, server.Config{DataDir: dir})
		two := relaistest.StartServer(t, server.Config{DataDir: dir, Node: uuid.NewString()})
		fn(t, one, two)
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.DB(t)
		one := relaistest.StartServer(t, server.Config{Store: url})
		two := relaistest.StartServer(t, server.Config{Store: url})
		fn(t, one, two)
	})
}

func testErasureOnAnotherServerWins(t *testing.T, one, two *relaistest.Server) {
	ctx := context.Background()
	one.AddUser(t, "admin@exemple.fr", "admin", relaistest.TabletsPassword)
	tab := relaistest.OpenDevice(t, "tablette", device.Options{ClockSkew: 2 * time.Minute})
	if err := tab.Login(ctx, one.URL, "admin@exemple.fr", relaistest.TabletsPassword); err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := tab.DB().ExecContext(ctx, "INSERT INTO beneficiaire (id, anonyme, prenom, nom, telephone) VALUES (?, 0, 'Camille', 'Martin', '0600000000')", id); err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := two.EraseBeneficiaire(ctx, id); err != nil {
		t.Fatal(err)
	}
	var prenom, nom, tel sql.NullString
	if err := one.DB().R.QueryRowContext(ctx, "SELECT prenom, nom, telephone FROM beneficiaire WHERE id = ?", id).Scan(&prenom, &nom, &tel); err != nil {
		t.Fatal(err)
	}
	if prenom.Valid || nom.Valid || tel.Valid {
		t.Fatalf("after the erasure by the other server, the server still holds %q %q %q", prenom.String, nom.String, tel.String)
	}
	// And the tablet, at its next sync, erases them too.
	if _, err := tab.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tab.DB().QueryRowContext(ctx, "SELECT prenom, nom, telephone FROM beneficiaire WHERE id = ?", id).Scan(&prenom, &nom, &tel); err != nil {
		t.Fatal(err)
	}
	if prenom.Valid || nom.Valid || tel.Valid {
		t.Fatalf("the tablet still holds %q %q %q", prenom.String, nom.String, tel.String)
	}
}

// TestWriteAfterSeeingACellFromAnotherServer: a tablet two minutes fast
// writes a cell through one server; a second tablet receives it through
// the other server, whose clock never saw it, then edits that cell. The
// edit was made after seeing the first write, so it must win everywhere
// (clocks follow messages): the answer's clock is past every version the
// answer carries, whichever server stored them.
func TestWriteAfterSeeingACellFromAnotherServer(t *testing.T) {
	onTwoServers(t, testWriteAfterSeeingACellFromAnotherServer)
}

func testWriteAfterSeeingACellFromAnotherServer(t *testing.T, one, two *relaistest.Server) {
	ctx := context.Background()
	one.AddUser(t, "admin@exemple.fr", "admin", relaistest.TabletsPassword)
	fast := relaistest.OpenDevice(t, "rapide", device.Options{ClockSkew: 2 * time.Minute})
	if err := fast.Login(ctx, one.URL, "admin@exemple.fr", relaistest.TabletsPassword); err != nil {
		t.Fatal(err)
	}
	other := two.LoggedInDevice(t, "autre", "admin@exemple.fr", relaistest.TabletsPassword)
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := fast.DB().ExecContext(ctx, "INSERT INTO structure (id, nom) VALUES (?, 'Médiathèque')", id); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		r   *device.Replica
		sql string
	}{
		{fast, ""},
		{other, ""},
		{other, "UPDATE structure SET nom = 'France Services' WHERE id = ?"},
		{other, ""},
		{fast, ""},
	} {
		if step.sql != "" {
			if _, err := step.r.DB().ExecContext(ctx, step.sql, id); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := step.r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for name, db := range map[string]*sql.DB{"server": one.DB().R, "fast tablet": fast.DB(), "other tablet": other.DB()} {
		var nom string
		if err := db.QueryRowContext(ctx, "SELECT nom FROM structure WHERE id = ?", id).Scan(&nom); err != nil {
			t.Fatal(err)
		}
		if nom != "France Services" {
			t.Errorf("%s holds %q: the edit made after seeing the first write lost to it", name, nom)
		}
	}
}
