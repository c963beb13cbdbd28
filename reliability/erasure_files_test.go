package reliability

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// TestErasedValuesLeaveTheServerFiles: after a beneficiary is erased on
// the server (and a device has synced the erasure), no byte of its name
// or phone number remains in the database file or its write-ahead log,
// while the server keeps running (issue 11, failure 10: they stayed in
// relais.db-wal until a clean shutdown).
func TestErasedValuesLeaveTheServerFiles(t *testing.T) {
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{})
	srv.AddUser(t, "a@relais.test", "admin", "mot-de-passe-a")
	a := srv.LoggedInDevice(t, "a", "a@relais.test", "mot-de-passe-a")
	id := uuid.Must(uuid.NewV7()).String()
	secrets := [][]byte{[]byte("Zephyrine"), []byte("Quasimodo-Brun"), []byte("0611223344")}
	if _, err := a.DB().ExecContext(ctx, "INSERT INTO beneficiaire (id, prenom, nom, telephone) VALUES (?, ?, ?, ?)",
		id, string(secrets[0]), string(secrets[1]), string(secrets[2])); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	files := []string{server.DBPath(srv.DataDir), server.DBPath(srv.DataDir) + "-wal"}
	found := func() []string {
		var where []string
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if bytes.Contains(raw, s) {
					where = append(where, filepath.Base(f)+": "+string(s))
				}
			}
		}
		return where
	}
	if len(found()) == 0 {
		t.Fatal("the values are in neither file before the erasure: the test would prove nothing")
	}
	if err := srv.EraseBeneficiaire(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if where := found(); len(where) > 0 {
		t.Fatalf("erased values still readable in the server's files: %v", where)
	}
}
