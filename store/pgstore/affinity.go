package pgstore

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// SQLite's column affinity, where the statements written once for both
// engines count on it: a TEXT column takes a number as its text (the
// conflict log's values, of any type in SQLite, are text here), and a
// BLOB column takes a text as its bytes (a row key that is not a UUID,
// replica.PKArg, which only tests write: every synced key is one). pgx
// would refuse both with "unable to encode"; these codecs are pgx's own
// for the other values.
func registerAffinity(_ context.Context, conn *pgx.Conn) error {
	m := conn.TypeMap()
	m.RegisterType(&pgtype.Type{Name: "text", OID: pgtype.TextOID, Codec: lenientText{}})
	m.RegisterType(&pgtype.Type{Name: "bytea", OID: pgtype.ByteaOID, Codec: lenientBytea{}})
	return nil
}

type lenientText struct{ pgtype.TextCodec }

func (c lenientText) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	switch value.(type) {
	case int64, float64, bool:
		return numberAsText{}
	}
	return c.TextCodec.PlanEncode(m, oid, format, value)
}

// numberAsText writes a number as SQLite's CAST(x AS TEXT) would.
type numberAsText struct{}

func (numberAsText) Encode(value any, buf []byte) ([]byte, error) {
	switch v := value.(type) {
	case int64:
		return strconv.AppendInt(buf, v, 10), nil
	case float64:
		return strconv.AppendFloat(buf, v, 'g', -1, 64), nil
	case bool:
		if v {
			return append(buf, '1'), nil
		}
		return append(buf, '0'), nil
	}
	return nil, nil
}

type lenientBytea struct{ pgtype.ByteaCodec }

func (c lenientBytea) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(string); ok {
		if format == pgtype.BinaryFormatCode {
			return textAsBytes{}
		}
		return textAsHexBytes{}
	}
	return c.ByteaCodec.PlanEncode(m, oid, format, value)
}

type textAsBytes struct{}

func (textAsBytes) Encode(value any, buf []byte) ([]byte, error) {
	return append(buf, value.(string)...), nil
}

// textAsHexBytes is bytea's text format: \x then the bytes in hex.
type textAsHexBytes struct{}

func (textAsHexBytes) Encode(value any, buf []byte) ([]byte, error) {
	const hexdig = "0123456789abcdef"
	s := value.(string)
	buf = append(buf, '\\', 'x')
	for i := 0; i < len(s); i++ {
		buf = append(buf, hexdig[s[i]>>4], hexdig[s[i]&15])
	}
	return buf, nil
}
