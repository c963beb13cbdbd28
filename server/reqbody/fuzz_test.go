package reqbody

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/relais-numerique/relais/syncproto"
)

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// FuzzDecode feeds the request-body reader (the encoding check, then gzip
// through a limited reader) any bytes under any encoding: it never
// panics, never returns more than the limit, and every refusal carries a
// protocol code.
func FuzzDecode(f *testing.F) {
	f.Add("gzip", gz([]byte(`{"cursor":0}`)))
	f.Add("gzip", gz(make([]byte, 5000)))
	f.Add("gzip", append(gz([]byte("a")), gz([]byte("b"))...))
	f.Add("gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add("", []byte(`{"cursor":0}`))
	f.Add("br", []byte("x"))
	f.Add("gzip, gzip", gz(gz([]byte("{}"))))
	f.Add(" GZIP ", gz([]byte("{}")))
	const limit = 4096
	f.Fuzz(func(t *testing.T, h string, raw []byte) {
		enc, err := encoding(h)
		if err != nil {
			if syncproto.CodeOf(err) != syncproto.CodeUnsupportedEncoding {
				t.Fatalf("encoding %q refused without its code: %v", h, err)
			}
			return
		}
		if enc == "" {
			return
		}
		out, err := Decode(raw, limit)
		if err != nil {
			if syncproto.CodeOf(err) == "" {
				t.Fatalf("refusal without a protocol code: %v", err)
			}
			return
		}
		if len(out) > limit {
			t.Fatalf("returned %d bytes, over the %d limit", len(out), limit)
		}
	})
}
