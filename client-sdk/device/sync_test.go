package device_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/server"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	tt := relaistest.StartTwoTablets(t, server.Config{}, "a@example.fr", "admin")
	a, b := tt.A, tt.B
	id := uuid.Must(uuid.NewV7()).String()
	if _, err := a.DB().ExecContext(ctx, "INSERT INTO activite (id, type, duree) VALUES (?, 'individuel', 30)", id); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a: %+v", rep)
	rep, err = b.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("b: %+v", rep)
	var typ string
	var duree int
	if err := b.DB().QueryRowContext(ctx, "SELECT type, duree FROM activite WHERE id = ?", id).Scan(&typ, &duree); err != nil {
		t.Fatal(err)
	}
	if typ != "individuel" || duree != 30 {
		t.Fatalf("got %q %d", typ, duree)
	}
}
