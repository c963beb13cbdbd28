package syncproto

import (
	"encoding/json"
	"strings"
	"testing"
)

func testSchema() *Schema {
	return &Schema{Tables: map[string]*Table{
		"activite": {Name: "activite", Columns: map[string]ColumnType{
			"type": TypeText, "duree": TypeInteger, "latitude": TypeReal,
		}},
	}}
}

const pk = "0192f1a0-0000-7000-8000-000000000001"

func TestSchemaCheck(t *testing.T) {
	v := Version{HLC: MakeTimestamp(1_700_000_000_000, 0), Node: "dev"}
	tests := []struct {
		name string
		c    Change
		code Code // "" when accepted
		want any  // normalised value when accepted
	}{
		{"text", Change{Table: "activite", PK: pk, Column: "type", Value: "individuel", Version: v}, "", "individuel"},
		{"null", Change{Table: "activite", PK: pk, Column: "type", Value: nil, Version: v}, "", nil},
		{"integer", Change{Table: "activite", PK: pk, Column: "duree", Value: json.Number("45"), Version: v}, "", int64(45)},
		{"real from integer", Change{Table: "activite", PK: pk, Column: "latitude", Value: json.Number("48"), Version: v}, "", float64(48)},
		{"tombstone", Change{Table: "activite", PK: pk, Column: DeletedColumn, Value: json.Number("1"), Version: v}, "", int64(1)},
		{"unknown table", Change{Table: "users", PK: pk, Column: "type", Version: v}, CodeUnknownTable, nil},
		{"bookkeeping table", Change{Table: "_cells", PK: pk, Column: "val", Version: v}, CodeUnknownTable, nil},
		{"unknown column", Change{Table: "activite", PK: pk, Column: "nope", Version: v}, CodeUnknownColumn, nil},
		{"sql in column", Change{Table: "activite", PK: pk, Column: `type" = 1; DROP TABLE activite; --`, Version: v}, CodeUnknownColumn, nil},
		{"id is not a cell", Change{Table: "activite", PK: pk, Column: "id", Version: v}, CodeUnknownColumn, nil},
		{"text into integer", Change{Table: "activite", PK: pk, Column: "duree", Value: "45", Version: v}, CodeBadValue, nil},
		{"fraction into integer", Change{Table: "activite", PK: pk, Column: "duree", Value: json.Number("4.5"), Version: v}, CodeBadValue, nil},
		{"overflowing integer", Change{Table: "activite", PK: pk, Column: "duree", Value: json.Number("99999999999999999999"), Version: v}, CodeBadValue, nil},
		{"number into text", Change{Table: "activite", PK: pk, Column: "type", Value: json.Number("3"), Version: v}, CodeBadValue, nil},
		{"object into text", Change{Table: "activite", PK: pk, Column: "type", Value: map[string]any{}, Version: v}, CodeBadValue, nil},
		{"huge text", Change{Table: "activite", PK: pk, Column: "type", Value: strings.Repeat("x", MaxTextBytes+1), Version: v}, CodeBadValue, nil},
		{"tombstone 2", Change{Table: "activite", PK: pk, Column: DeletedColumn, Value: json.Number("2"), Version: v}, CodeBadValue, nil},
		{"key not a uuid", Change{Table: "activite", PK: "42", Column: "type", Version: v}, CodeBadChange, nil},
		{"no version", Change{Table: "activite", PK: pk, Column: "type"}, CodeBadChange, nil},
		{"negative prev", Change{Table: "activite", PK: pk, Column: "type", Version: v, Prev: Version{HLC: -1}}, CodeBadChange, nil},
	}
	s := testSchema()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			err := s.Check(&c)
			if got := CodeOf(err); got != tt.code {
				t.Fatalf("code %q, want %q (err %v)", got, tt.code, err)
			}
			if tt.code == "" && c.Value != tt.want {
				t.Fatalf("value %#v, want %#v", c.Value, tt.want)
			}
			if err != nil && len(err.Error()) > 300 {
				t.Fatalf("error message too long to read: %d bytes", len(err.Error()))
			}
		})
	}
}

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		code Code
	}{
		{"pull only", `{"cursor": 5, "clock": 1}`, ""},
		{"push", `{"push": {"id": "b1", "changes": [{"tbl": "activite", "pk": "x", "col": "type", "val": 3, "ver": [1, "n"]}]}}`, ""},
		{"not json", `{"cursor": `, CodeMalformedBody},
		{"trailing data", `{"cursor": 1} {"cursor": 2}`, CodeMalformedBody},
		{"negative cursor", `{"cursor": -1}`, CodeMalformedBody},
		{"batch without id", `{"push": {"changes": []}}`, CodeMalformedBody},
		{"version not a pair", `{"push": {"id": "b", "changes": [{"ver": {"hlc": 1}}]}}`, CodeMalformedBody},
		{"cursor a string", `{"cursor": "7"}`, CodeMalformedBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRequest([]byte(tt.body))
			if got := CodeOf(err); got != tt.code {
				t.Fatalf("code %q, want %q (%v)", got, tt.code, err)
			}
		})
	}
	req, err := DecodeRequest([]byte(`{"push": {"id": "b1", "changes": [{"tbl": "activite", "pk": "x", "col": "duree", "val": 30, "ver": [9, "n"], "prev": [4, "m"]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := req.Push.Changes[0]
	if c.Value != json.Number("30") || c.Version != (Version{9, "n"}) || c.Prev != (Version{4, "m"}) {
		t.Fatalf("decoded %+v", c)
	}
}

// TestStoredValue: numbers kept as text come back as numbers of their
// column's type; everything else comes back as it was.
func TestStoredValue(t *testing.T) {
	s := testSchema()
	for _, tc := range []struct {
		table, column string
		in, want      any
	}{
		{"activite", "duree", "60", int64(60)},
		{"activite", "duree", "-3", int64(-3)},
		{"activite", "duree", int64(60), int64(60)},
		{"activite", "duree", "soixante", "soixante"},
		{"activite", "duree", nil, nil},
		{"activite", "latitude", "48.07", 48.07},
		{"activite", "latitude", "NaN", "NaN"},
		{"activite", "type", "60", "60"},
		{"activite", DeletedColumn, "1", int64(1)},
		{"inconnue", "duree", "60", "60"},
	} {
		if got := s.StoredValue(tc.table, tc.column, tc.in); got != tc.want {
			t.Errorf("StoredValue(%s.%s, %#v) = %#v, want %#v", tc.table, tc.column, tc.in, got, tc.want)
		}
	}
}
