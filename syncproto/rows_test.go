package syncproto

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestRowsRoundTrip: any list of changes, once encoded in the grouped
// form, decodes to the same changes in the same order, in a pushed batch
// and in an answer alike.
func TestRowsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tables := []string{"activite", "beneficiaire"}
		pks := []string{"01928a10-0000-7000-8000-000000000001", "01928a10-0000-7000-8000-000000000002"}
		cols := []string{"type", "duree", "notes", "_deleted", "a\"b", "é\n"}
		nodes := []string{"n1", "n2", "<&>"}
		changes := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Change {
			c := Change{
				Table:   rapid.SampledFrom(tables).Draw(t, "tbl"),
				PK:      rapid.SampledFrom(pks).Draw(t, "pk"),
				Column:  rapid.SampledFrom(cols).Draw(t, "col"),
				Version: Version{HLC: Timestamp(rapid.SampledFrom([]int64{1, 2, 3, math.MaxInt64, math.MinInt64, -5}).Draw(t, "hlc")), Node: rapid.SampledFrom(nodes).Draw(t, "node")},
			}
			switch rapid.IntRange(0, 4).Draw(t, "kind") {
			case 0:
				c.Value = nil
			case 1:
				c.Value = rapid.String().Draw(t, "s")
			case 2:
				c.Value = json.Number(strconv.FormatInt(rapid.Int64().Draw(t, "i"), 10))
			case 3:
				c.Value = json.Number("3.25")
			case 4:
				c.Value = "\x00\u2028\xff<script>"
			}
			if rapid.Bool().Draw(t, "prev") {
				c.Prev = Version{HLC: Timestamp(rapid.Int64Range(0, 3).Draw(t, "phlc")), Node: rapid.SampledFrom(nodes).Draw(t, "pnode")}
			}
			return c
		}), 0, 30).Draw(t, "changes")

		body, err := json.Marshal(SyncRequest{Push: &Batch{ID: "b1", Changes: changes}, Cursor: 3})
		if err != nil {
			t.Fatal(err)
		}
		req, err := DecodeRequest(body)
		if err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		want := normaliseStrings(changes)
		if !sameChanges(req.Push.Changes, want) {
			t.Fatalf("batch round trip:\n got %#v\nwant %#v\n%s", req.Push.Changes, want, body)
		}

		body, err = json.Marshal(&SyncResponse{Changes: changes, Cursor: 9, More: true, Clock: 5})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := DecodeResponse(body)
		if err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		if !sameChanges(resp.Changes, want) || resp.Cursor != 9 || !resp.More || resp.Clock != 5 {
			t.Fatalf("answer round trip:\n got %#v\nwant %#v\n%s", resp, want, body)
		}
	})
}

// normaliseStrings replaces invalid UTF-8 as any JSON encoder does.
func normaliseStrings(changes []Change) []Change {
	out := make([]Change, len(changes))
	for i, c := range changes {
		if s, ok := c.Value.(string); ok {
			c.Value = strings.ToValidUTF8(s, "\ufffd")
		}
		out[i] = c
	}
	return out
}

func sameChanges(a, b []Change) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestRowsGrouping: cells of one row written together travel as one group,
// each group's hlc relative to the previous one, and the older
// one-object-per-cell form is still read.
func TestRowsGrouping(t *testing.T) {
	v := Version{HLC: 7, Node: "n"}
	changes := []Change{
		{Table: "activite", PK: "p1", Column: "type", Value: "individuel", Version: v},
		{Table: "activite", PK: "p1", Column: "duree", Value: int64(45), Version: v, Prev: Version{HLC: 3, Node: "m"}},
		{Table: "activite", PK: "p2", Column: "duree", Value: int64(30), Version: v},
		{Table: "activite", PK: "p3", Column: "duree", Value: int64(60), Version: Version{HLC: 5, Node: "n"}},
	}
	body, err := json.Marshal(&SyncResponse{Changes: changes})
	if err != nil {
		t.Fatal(err)
	}
	want := `"rows":[["activite","p1",7,"n",{"type":"individuel","duree":45},{"duree":[3,"m"]}],["activite","p2",0,"n",{"duree":30}],["activite","p3",-2,"n",{"duree":60}]]`
	if !strings.Contains(string(body), want) {
		t.Fatalf("got %s\nwant it to contain %s", body, want)
	}
	old := `{"changes":[{"tbl":"activite","pk":"p1","col":"duree","val":45,"ver":[7,"n"],"prev":[3,"m"]}],"cursor":4}`
	resp, err := DecodeResponse([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Changes) != 1 || resp.Changes[0].Value != json.Number("45") || resp.Changes[0].Prev != (Version{3, "m"}) || resp.Cursor != 4 {
		t.Fatalf("old form: %#v", resp)
	}
	for _, bad := range []string{
		`{"rows":[["activite","p1",7]]}`,
		`{"rows":[["activite","p1","x","n",{}]]}`,
		`{"rows":[["activite","p1",7,"n",[]]]}`,
		`{"rows":[["activite","p1",7,"n",{"a":1},{"b":[1,"x"]}]]}`,
	} {
		if _, err := DecodeResponse([]byte(bad)); CodeOf(err) != CodeMalformedBody {
			t.Errorf("%s: got %v, want malformed_body", bad, err)
		}
	}
}
