package syncproto

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ColumnType is the storage class a synced column accepts. Synced tables
// declare one of TEXT, INTEGER or REAL; anything else is refused when the
// schema is read, so a value's type can always be checked before it is
// written.
type ColumnType string

const (
	TypeText    ColumnType = "TEXT"
	TypeInteger ColumnType = "INTEGER"
	TypeReal    ColumnType = "REAL"
)

// Table describes one synced table: its name and its columns other than
// the primary key "id".
type Table struct {
	Name    string
	Columns map[string]ColumnType
}

// ColumnNames returns the table's columns in a stable order.
func (t *Table) ColumnNames() []string {
	names := make([]string, 0, len(t.Columns))
	for n := range t.Columns {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Schema is the set of synced tables. It is read from the database itself
// so that the SQL migrations stay the single source of truth.
type Schema struct {
	Tables map[string]*Table
}

// TableNames returns the synced tables in a stable order.
func (s *Schema) TableNames() []string {
	names := make([]string, 0, len(s.Tables))
	for n := range s.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ColumnType returns the type of table.column, and whether it exists. The
// tombstone column exists in every table.
func (s *Schema) ColumnType(table, column string) (ColumnType, bool) {
	t, ok := s.Tables[table]
	if !ok {
		return "", false
	}
	if column == DeletedColumn {
		return TypeInteger, true
	}
	ct, ok := t.Columns[column]
	return ct, ok
}

// Check validates one change against the schema and normalises its value
// to nil, string, int64 or float64. It is the gate every change passes
// before anything is written, on the server and on devices alike.
func (s *Schema) Check(c *Change) error {
	t, ok := s.Tables[c.Table]
	if !ok {
		return Errorf(CodeUnknownTable, "unknown table %q", clip(c.Table))
	}
	if _, err := uuid.Parse(c.PK); err != nil || len(c.PK) != 36 {
		return Errorf(CodeBadChange, "primary key of %s must be a UUID, got %q", t.Name, clip(c.PK))
	}
	// One spelling per row: keys that differ only in case would be two
	// rows for one UUID.
	c.PK = strings.ToLower(c.PK)
	ct, ok := s.ColumnType(c.Table, c.Column)
	if !ok {
		return Errorf(CodeUnknownColumn, "table %s has no column %q", t.Name, clip(c.Column))
	}
	if c.Version.HLC <= 0 || c.Version.Node == "" || len(c.Version.Node) > MaxNodeBytes {
		return Errorf(CodeBadChange, "change to %s.%s has no valid version", t.Name, c.Column)
	}
	if c.Prev.HLC < 0 || len(c.Prev.Node) > MaxNodeBytes {
		return Errorf(CodeBadChange, "change to %s.%s has an invalid prev version", t.Name, c.Column)
	}
	v, err := normalise(ct, c.Value)
	if err != nil {
		return Errorf(CodeBadValue, "%s.%s: %s", t.Name, c.Column, err.Error())
	}
	if c.Column == DeletedColumn && v != int64(0) && v != int64(1) {
		return Errorf(CodeBadValue, "%s.%s must be 0 or 1", t.Name, DeletedColumn)
	}
	c.Value = v
	return nil
}

type valueError string

func (e valueError) Error() string { return string(e) }

// normalise converts a decoded JSON value to the Go type SQLite stores for
// the column's type, refusing anything that would change meaning on the way.
func normalise(ct ColumnType, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch ct {
	case TypeText:
		s, ok := v.(string)
		if !ok {
			return nil, valueError("expected text")
		}
		if len(s) > MaxTextBytes {
			return nil, valueError("text longer than 32 KiB")
		}
		if !utf8.ValidString(s) {
			return nil, valueError("text is not valid UTF-8")
		}
		if strings.IndexByte(s, 0) >= 0 {
			return nil, valueError("text contains a NUL character")
		}
		return s, nil
	case TypeInteger:
		switch n := v.(type) {
		case json.Number:
			i, err := n.Int64()
			if err != nil {
				return nil, valueError("expected an integer, got " + clip(n.String()))
			}
			return i, nil
		case int64:
			return n, nil
		case int:
			return int64(n), nil
		case float64:
			if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
				return nil, valueError("expected an integer")
			}
			return int64(n), nil
		}
		// A JSON true or false is refused too: an INTEGER column takes
		// numbers only, so what is stored is what was meant.
		return nil, valueError("expected an integer")
	case TypeReal:
		switch n := v.(type) {
		case json.Number:
			f, err := n.Float64()
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, valueError("expected a number, got " + clip(n.String()))
			}
			return f, nil
		case float64:
			if math.IsInf(n, 0) || math.IsNaN(n) {
				return nil, valueError("expected a finite number")
			}
			return n, nil
		case int64:
			return float64(n), nil
		case int:
			return float64(n), nil
		}
		return nil, valueError("expected a number")
	}
	return nil, valueError("column has unsupported type " + string(ct))
}

// clip shortens attacker-controlled text before it goes into a message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ParseColumnType maps an SQLite declared type to a ColumnType.
func ParseColumnType(declared string) (ColumnType, bool) {
	switch strings.ToUpper(strings.TrimSpace(declared)) {
	case "TEXT":
		return TypeText, true
	case "INTEGER", "INT", "BOOLEAN":
		return TypeInteger, true
	case "REAL":
		return TypeReal, true
	}
	return "", false
}

// StoredValue turns back into a number a value of an INTEGER or REAL
// column read from where its type was lost: PostgreSQL's conflict log
// keeps both sides as TEXT, so 60 reads back as "60". Check lets only
// numbers into such columns, so the text of one is always a number's;
// any other value is returned as it is, which is what SQLite, keeping
// each value's type, gives back.
func (s *Schema) StoredValue(table, column string, v any) any {
	text, ok := v.(string)
	if !ok {
		return v
	}
	switch ct, _ := s.ColumnType(table, column); ct {
	case TypeInteger:
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return n
		}
	case TypeReal:
		if f, err := strconv.ParseFloat(text, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
	}
	return v
}
