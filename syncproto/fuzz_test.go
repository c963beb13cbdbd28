package syncproto

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// The decoders below read bytes that come from outside (a device's
// request on the server, the server's answer on a device). Whatever the
// bytes, they must return a value or an error, never panic, and what they
// accept must survive a round trip.

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"cursor":0,"clock":0}`))
	f.Add([]byte(`{"push":{"id":"b1","changes":[{"tbl":"activite","pk":"01928a10-0000-7000-8000-000000000001","col":"duree","val":45,"ver":[1234567,"n1"],"prev":[0,""]}]},"cursor":12,"limit":100,"clock":7,"pending":1}`))
	f.Add([]byte(`{"push":{"id":"","changes":[]},"cursor":-1}`))
	f.Add([]byte(`{"cursor":1}{"cursor":2}`))
	f.Add([]byte(`{"push":{"id":"x","changes":[{"val":1e400,"ver":[1.5,"n"]}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(body)
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("error without a protocol code: %v", err)
			}
			return
		}
		if req.Cursor < 0 || req.Limit < 0 {
			t.Fatalf("accepted a negative cursor or limit: %+v", req)
		}
		if req.Push != nil && (req.Push.ID == "" || len(req.Push.ID) > 64 || len(req.Push.Changes) > MaxBatchChanges) {
			t.Fatalf("accepted a bad batch: id %q, %d changes", req.Push.ID, len(req.Push.Changes))
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("accepted a request it cannot encode: %v", err)
		}
		if _, err := DecodeRequest(again); err != nil {
			t.Fatalf("re-encoded request refused: %v\n%s", err, again)
		}
		// Every change must go through the schema gate without panicking.
		if req.Push != nil {
			s := testSchema()
			for i := range req.Push.Changes {
				_ = s.Check(&req.Push.Changes[i])
			}
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"ack":"b1","applied":1,"changes":[],"cursor":3,"more":false,"clock":99}`))
	f.Add([]byte(`{"changes":[{"tbl":"t","pk":"p","col":"c","val":"x","ver":[1,"n"]}],"conflicts":[{"tbl":"t","pk":"p","col":"c","winner":[2,"a"],"loser":[1,"b"]}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"changes":[{"ver":[1]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := DecodeResponse(body)
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("error without a protocol code: %v", err)
			}
			return
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("accepted an answer it cannot encode: %v", err)
		}
	})
}

// FuzzVersionJSON: a version decodes from [hlc, node] only, and what
// decodes encodes back to the same version.
func FuzzVersionJSON(f *testing.F) {
	f.Add([]byte(`[123456789, "01928a10-0000-7000-8000-000000000001"]`))
	f.Add([]byte(`[0, ""]`))
	f.Add([]byte(`[1.5, "a"]`))
	f.Add([]byte(`[9223372036854775807, "z"]`))
	f.Add([]byte(`{"hlc":1}`))
	f.Add([]byte(`[1, "a", 3]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v Version
		if err := json.Unmarshal(b, &v); err != nil {
			return
		}
		enc, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("cannot encode %#v: %v", v, err)
		}
		var back Version
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("cannot decode own encoding %s: %v", enc, err)
		}
		if Compare(v, back) != 0 {
			t.Fatalf("round trip changed %v into %v", v, back)
		}
	})
}

// FuzzClock: clock values are integers sent by the other side. Next and
// the offset check must hold their laws for any of them: the next reading
// is above the last and the received one (unless at the top of the range)
// and never below the wall clock, and a clock far ahead is refused.
func FuzzClock(f *testing.F) {
	f.Add(int64(0), int64(0), int64(0))
	f.Add(int64(MakeTimestamp(1_700_000_000_000, 5)), int64(MakeTimestamp(1_700_000_000_001, 0)), int64(1_700_000_000_000))
	f.Add(int64(-1), int64(1<<62), int64(1))
	f.Add(int64(1<<63-1), int64(1<<63-1), int64(0))
	f.Fuzz(func(t *testing.T, last, received, physMillis int64) {
		if physMillis < 0 || physMillis > 1<<47 {
			return // a wall clock reads a positive time within 48 bits
		}
		phys := MakeTimestamp(physMillis, 0)
		l, r := Timestamp(last), Timestamp(received)
		n := Next(l, r, phys)
		if n < l || n < r {
			t.Fatalf("Next(%d, %d, %d) = %d, went below what it had seen", l, r, phys, n)
		}
		if l < 1<<63-1 && n <= l {
			t.Fatalf("Next(%d, %d, %d) = %d, not above last", l, r, phys, n)
		}
		if r < 1<<63-1 && n <= r {
			t.Fatalf("Next(%d, %d, %d) = %d, not above received", l, r, phys, n)
		}
		if n < phys {
			t.Fatalf("Next(%d, %d, %d) = %d, below the wall clock", l, r, phys, n)
		}
		c := NewClock(nil, 0, defaultFuzzOffset)
		if err := c.CheckOffset(r); err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != CodeClockAhead {
				t.Fatalf("offset refusal with the wrong error: %v", err)
			}
		}
	})
}

const defaultFuzzOffset = 5 * time.Minute

// FuzzDecodeResponseColumns: the column form of an answer, read on a
// device from the network. Whatever the bytes: an answer or a
// malformed_body error, never a panic, never more cells than a page and
// a batch may hold; and an accepted answer, written again, reads back
// to the same answer.
func FuzzDecodeResponseColumns(f *testing.F) {
	f.Add(columnsSample(f))
	f.Add([]byte("RC\x01\x02{}\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("RC\x01"))
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := DecodeResponseColumns(body)
		if err != nil {
			if CodeOf(err) != CodeMalformedBody {
				t.Fatalf("error without malformed_body: %v", err)
			}
			return
		}
		if len(resp.Changes) > MaxBatchChanges+MaxPageLimit {
			t.Fatalf("accepted %d cells", len(resp.Changes))
		}
		again, err := EncodeResponseColumns(resp)
		if err != nil {
			t.Fatalf("accepted an answer it cannot encode: %v", err)
		}
		back, err := DecodeResponseColumns(again)
		if err != nil {
			t.Fatalf("re-encoded answer refused: %v", err)
		}
		if !sameChanges(back.Changes, resp.Changes) {
			t.Fatalf("round trip changed the changes:\n%#v\n%#v", resp.Changes, back.Changes)
		}
		// The schema gate must take whatever the decoder gives.
		s := testSchema()
		for i := range resp.Changes {
			_ = s.Check(&resp.Changes[i])
		}
	})
}
