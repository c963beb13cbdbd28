package device

import (
	"testing"
	"time"
)

// TestAccessTokenLifeOnTheMonotonicClock: the SDK decides a token is
// stale from expires_in counted since the answer arrived, with a margin,
// and knows nothing of a token it did not receive itself.
func TestAccessTokenLifeOnTheMonotonicClock(t *testing.T) {
	start := time.Now()
	for _, tc := range []struct {
		name      string
		expiresIn int64 // 0: no token received in this process
		after     time.Duration
		stale     bool
	}{
		{"unknown token is tried as is", 0, 48 * time.Hour, false},
		{"fresh", 900, time.Minute, false},
		{"inside the margin", 900, 14*time.Minute + 29*time.Second, false},
		{"past the margin", 900, 14*time.Minute + 31*time.Second, true},
		{"long expired", 900, 21 * 24 * time.Hour, true},
		{"short-lived token, margin a tenth", 60, 53 * time.Second, false},
		{"short-lived token past its margin", 60, 55 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := start
			a := accessState{now: func() time.Time { return now }}
			if tc.expiresIn > 0 {
				a.received(tc.expiresIn)
			}
			now = start.Add(tc.after)
			if got := a.stale(); got != tc.stale {
				t.Fatalf("stale = %v, want %v", got, tc.stale)
			}
			a.forget()
			if a.stale() {
				t.Fatal("a forgotten token is still known stale")
			}
		})
	}
}
