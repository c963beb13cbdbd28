package device_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

// TestErasureReceivedLeavesNoTraceInTheFiles: an erasure made on one
// tablet reaches another that held the beneficiary: the name leaves its
// database file and write-ahead log at that sync (the log is emptied,
// not left to a later checkpoint). A tablet that first syncs after the
// erasure receives the row already erased, and holds the name nowhere
// either (its pages of new rows skip emptying the log).
func TestErasureReceivedLeavesNoTraceInTheFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := relaistest.StartServer(t, server.Config{})
	u := srv.AddUser(t, "camille@exemple.fr", "conseiller", accessPW)
	writer := srv.LoggedInDevice(t, "tablette", u.Email, accessPW)
	holder := srv.LoggedInDevice(t, "bureau", u.Email, accessPW)
	const name = "Effacee-7373"
	id := uuid.Must(uuid.NewV7()).String()
	sqlOn(t, writer, `INSERT INTO beneficiaire (id, mediateur_id, anonyme, prenom, nom) VALUES (?, ?, 0, 'Zoé', ?)`, id, u.ID, name)
	if _, err := writer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !filesContain(t, holder.Path(), name) {
		t.Fatal("the second tablet did not receive the beneficiary: the test proves nothing")
	}
	if err := writer.Erase(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var anonyme int
	if err := holder.DB().QueryRow("SELECT anonyme FROM beneficiaire WHERE id = ?", id).Scan(&anonyme); err != nil || anonyme != 1 {
		t.Fatalf("the erasure did not reach the second tablet: anonyme %d, %v", anonyme, err)
	}
	if filesContain(t, holder.Path(), name) {
		t.Error("the tablet that held the beneficiary still holds the erased name in its files")
	}
	late := srv.LoggedInDevice(t, "nouvelle", u.Email, accessPW)
	if _, err := late.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := late.DB().QueryRow("SELECT anonyme FROM beneficiaire WHERE id = ?", id).Scan(&anonyme); err != nil || anonyme != 1 {
		t.Fatalf("the new tablet did not receive the erased beneficiary: anonyme %d, %v", anonyme, err)
	}
	if filesContain(t, late.Path(), name) {
		t.Error("a tablet that synced after the erasure holds the erased name")
	}
}
