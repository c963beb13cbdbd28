package device_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/relais-numerique/relais/client-sdk/device"
	"github.com/relais-numerique/relais/internal/relaistest"
	"github.com/relais-numerique/relais/syncproto"
)

// The clock-skew hook must reach the capture triggers (SQL) and not only
// the Go side, or the reliability simulation's "wrong clock" devices would
// write with the right clock. Reopening without the option clears it.
func TestClockSkewReachesTriggers(t *testing.T) {
	ctx := context.Background()
	r := relaistest.OpenDevice(t, "skew", device.Options{ClockSkew: time.Hour})
	write := func() syncproto.Timestamp {
		t.Helper()
		id := uuid.Must(uuid.NewV7()).String()
		if _, err := r.DB().ExecContext(ctx, "INSERT INTO activite (id, duree) VALUES (?, 30)", id); err != nil {
			t.Fatal(err)
		}
		var hlc int64
		if err := r.DB().QueryRowContext(ctx, "SELECT hlc FROM _outbox WHERE pk = ?", id).Scan(&hlc); err != nil {
			t.Fatal(err)
		}
		return syncproto.Timestamp(hlc)
	}
	ahead := time.Until(write().Time())
	if ahead < 59*time.Minute || ahead > 61*time.Minute {
		t.Fatalf("a write on a device one hour ahead is stamped %s ahead", ahead)
	}
	path := r.Path()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	if r, err = device.Open(ctx, path, device.Options{}); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var skew int64
	if err := r.DB().QueryRowContext(ctx, "SELECT clock_skew_ms FROM _device").Scan(&skew); err != nil || skew != 0 {
		t.Fatalf("reopened without the option: skew %d, %v", skew, err)
	}
}
