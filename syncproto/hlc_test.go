package syncproto

import (
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestTimestampPacking(t *testing.T) {
	tests := []struct {
		millis  int64
		logical uint16
	}{
		{0, 0}, {1, 0}, {0, 1}, {1_767_225_600_000, 65535}, {1<<47 - 1, 42},
	}
	for _, tt := range tests {
		ts := MakeTimestamp(tt.millis, tt.logical)
		if ts.Millis() != tt.millis || ts.Logical() != tt.logical {
			t.Errorf("MakeTimestamp(%d, %d) unpacks to (%d, %d)", tt.millis, tt.logical, ts.Millis(), ts.Logical())
		}
	}
	if !(MakeTimestamp(5, 65535) < MakeTimestamp(6, 0)) {
		t.Error("a later millisecond must sort above any counter of an earlier one")
	}
}

// fakeWall is a wall clock the property test moves, backwards too, as a
// cheap tablet's clock does when it is corrected.
type fakeWall struct{ now time.Time }

func (f *fakeWall) read() time.Time { return f.now }

// The clock never goes backwards and every reading is above everything it
// has issued or received, whatever the wall clock does.
func TestClockMonotonicAndDominates(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		start := time.UnixMilli(rapid.Int64Range(1_600_000_000_000, 1_900_000_000_000).Draw(t, "start"))
		wall := &fakeWall{now: start}
		c := NewClock(wall.read, 0, 0)
		var last, seen Timestamp
		steps := rapid.IntRange(1, 200).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			wall.now = wall.now.Add(time.Duration(rapid.Int64Range(-5000, 5000).Draw(t, "drift")) * time.Millisecond)
			var got Timestamp
			if rapid.Bool().Draw(t, "receive") {
				remote := FromTime(wall.now.Add(time.Duration(rapid.Int64Range(-60000, 60000).Draw(t, "skew"))*time.Millisecond)) +
					Timestamp(rapid.IntRange(0, 70000).Draw(t, "counter"))
				var err error
				if got, err = c.Update(remote); err != nil {
					t.Fatalf("update with no offset bound: %v", err)
				}
				seen = max(seen, remote)
			} else {
				got = c.Now()
			}
			if got <= last {
				t.Fatalf("clock went from %v to %v", last, got)
			}
			if got <= seen {
				t.Fatalf("reading %v does not dominate received %v", got, seen)
			}
			if got < FromTime(wall.now) {
				t.Fatalf("reading %v below wall clock %v", got, FromTime(wall.now))
			}
			last = got
		}
	})
}

func TestClockRestartsAbovePersisted(t *testing.T) {
	wall := &fakeWall{now: time.UnixMilli(1_700_000_000_000)}
	persisted := FromTime(wall.now.Add(time.Hour)) + 7 // written before a reboot that set the clock back
	c := NewClock(wall.read, persisted, 0)
	if got := c.Now(); got <= persisted {
		t.Fatalf("after restart the clock read %v, not above persisted %v", got, persisted)
	}
}

func TestCheckOffset(t *testing.T) {
	wall := &fakeWall{now: time.UnixMilli(1_700_000_000_000)}
	c := NewClock(wall.read, 0, time.Minute)
	tests := []struct {
		name  string
		ahead time.Duration
		ok    bool
	}{
		{"behind", -time.Hour, true},
		{"now", 0, true},
		{"within bound", 59 * time.Second, true},
		{"beyond bound", 61 * time.Second, false},
		{"a year ahead", 365 * 24 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.CheckOffset(FromTime(wall.now.Add(tt.ahead)))
			if (err == nil) != tt.ok {
				t.Fatalf("CheckOffset(%s ahead) = %v", tt.ahead, err)
			}
			if err != nil {
				if CodeOf(err) != CodeClockAhead {
					t.Fatalf("code %q, want clock_ahead", CodeOf(err))
				}
				if _, ok := err.(*Error).Details["server_time"]; !ok {
					t.Fatal("clock_ahead must carry the server time")
				}
				before := c.Last()
				if _, err := c.Update(FromTime(wall.now.Add(tt.ahead))); err == nil || c.Last() != before {
					t.Fatal("Update must refuse, and not move, on a timestamp beyond the bound")
				}
			}
		})
	}
}
