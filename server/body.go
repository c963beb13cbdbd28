package server

import (
	"bytes"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/relais-numerique/relais/syncproto"
)

// DecodeBody returns a request body as the handlers read it: raw, or
// gunzipped through a limited reader when its Content-Encoding is gzip,
// refusing more than limit bytes once decompressed (Fiber's own c.Body()
// would inflate a decompression bomb without limit). It is exported for
// the fuzz target that feeds it outside bytes.
func DecodeBody(encoding string, raw []byte, limit int64) ([]byte, error) {
	enc := strings.ToLower(strings.TrimSpace(encoding))
	switch enc {
	case "", "identity":
		return bytes.Clone(raw), nil
	case "gzip":
	default:
		return nil, syncproto.Errorf(syncproto.CodeUnsupportedEncoding, "content encoding %q is not supported; use gzip", enc)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, syncproto.Errorf(syncproto.CodeMalformedBody, "body is not valid gzip")
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, syncproto.Errorf(syncproto.CodeMalformedBody, "body is not valid gzip")
	}
	if int64(len(out)) > limit {
		return nil, syncproto.Errorf(syncproto.CodeBodyTooLarge, "decompressed body is larger than %d bytes", limit)
	}
	return out, nil
}
