package syncproto

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// Timestamp is a hybrid logical clock reading packed in one integer:
// 48 bits of Unix milliseconds, then a 16-bit logical counter. Packing it
// this way lets SQLite triggers advance the clock with integer arithmetic
// and lets both sides compare timestamps as plain integers.
type Timestamp int64

const logicalBits = 16

// MakeTimestamp packs a physical time in milliseconds and a logical counter.
func MakeTimestamp(millis int64, logical uint16) Timestamp {
	return Timestamp(millis<<logicalBits | int64(logical))
}

// FromTime returns the timestamp of a wall-clock time with counter zero.
func FromTime(t time.Time) Timestamp { return MakeTimestamp(t.UnixMilli(), 0) }

// Millis is the physical part, in Unix milliseconds.
func (t Timestamp) Millis() int64 { return int64(t) >> logicalBits }

// Logical is the counter part.
func (t Timestamp) Logical() uint16 { return uint16(int64(t) & (1<<logicalBits - 1)) }

// Time is the physical part as a time.Time.
func (t Timestamp) Time() time.Time { return time.UnixMilli(t.Millis()).UTC() }

func (t Timestamp) String() string {
	return fmt.Sprintf("%s+%d", t.Time().Format("2006-01-02T15:04:05.000Z"), t.Logical())
}

// Next is the one clock rule, shared by the Go clocks and (in SQL) by the
// device's capture triggers: the next reading is strictly above the last
// reading and above anything received, and never below the wall clock.
// When the counter overflows it carries into the milliseconds, which keeps
// the clock monotonic at the cost of running a hair ahead. At the very top
// of the int64 range it saturates instead of wrapping below zero: a
// received value of math.MaxInt64 (only a broken or hostile peer sends
// one) must not send the clock back to the wall-clock time.
func Next(last, received, physical Timestamp) Timestamp {
	next := max(last, received)
	if next < math.MaxInt64 {
		next++
	}
	if physical > next {
		next = physical
	}
	return next
}

// Clock is a hybrid logical clock (Kulkarni et al. 2014). It is safe for
// concurrent use. The physical clock is injected so that tests control time
// and so that a restarted process can resume above what it persisted.
type Clock struct {
	mu        sync.Mutex
	physical  func() time.Time
	last      Timestamp
	maxOffset time.Duration
}

// NewClock returns a clock reading physical time from now (time.Now when
// nil), starting above last (the highest timestamp persisted before a
// restart), that refuses remote readings more than maxOffset ahead of its
// wall clock.
func NewClock(now func() time.Time, last Timestamp, maxOffset time.Duration) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{physical: now, last: last, maxOffset: maxOffset}
}

// Now returns a fresh timestamp for a local event.
func (c *Clock) Now() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = Next(c.last, 0, FromTime(c.physical()))
	return c.last
}

// Last returns the highest timestamp issued or seen, without advancing.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Physical returns the wall-clock reading the clock would use now.
func (c *Clock) Physical() Timestamp { return FromTime(c.physical()) }

// CheckOffset reports an error with code clock_ahead when remote is further
// ahead of this clock's wall time than the allowed offset. It does not
// advance the clock, so a batch can be checked whole before anything is
// applied.
func (c *Clock) CheckOffset(remote Timestamp) error {
	if c.maxOffset <= 0 {
		return nil
	}
	now := c.physical()
	limit := now.Add(c.maxOffset).UnixMilli()
	if remote.Millis() > limit {
		return Errorf(CodeClockAhead,
			"clock is %s ahead of the server (allowed %s); set the device's date and time, then sync again",
			time.Duration(remote.Millis()-now.UnixMilli())*time.Millisecond, c.maxOffset).
			With(DetailServerTime, now.UnixMilli()).
			With(DetailMaxAheadMs, c.maxOffset.Milliseconds())
	}
	return nil
}

// Update advances the clock past a timestamp received from another node,
// after checking that it is not too far ahead.
func (c *Clock) Update(remote Timestamp) (Timestamp, error) {
	if err := c.CheckOffset(remote); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = Next(c.last, remote, FromTime(c.physical()))
	return c.last, nil
}
