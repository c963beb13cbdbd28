// Package reqbody reads request bodies, for every route of the server,
// through one limited reader. Fiber's own c.Body() inflates a gzip body
// without limit (a 1 MB body of zeros becomes a gigabyte), and Fiber's
// multipart and form readers do the same; so nothing in the server reads
// a body before Read has replaced it with its bounded, decoded bytes.
//
// The server streams request bodies (fasthttp's StreamRequestBody): a
// connection holds only a small read buffer until Read runs, and Read
// runs after authentication for every route that needs a login, so a
// client without credentials cannot make the server reserve the body
// size it declares.
package reqbody

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/klauspost/compress/gzip"

	"github.com/relais-numerique/relais/syncproto"
)

// Limits bound one request body.
type Limits struct {
	// Max is the most bytes a body may have as sent (compressed or not).
	Max int
	// Ratio bounds a gzip body once decompressed: at most Max*Ratio bytes.
	Ratio int
}

func (l Limits) inflated() int64 { return int64(l.Max) * int64(max(l.Ratio, 1)) }

type readKey struct{}

// CheckHeaders refuses, before anything is read, a body whose encoding
// is not one Read decodes (stacked encodings such as "gzip, gzip"
// included) or whose declared length is over max. It is the first
// check of every request.
func CheckHeaders(c *fiber.Ctx, max int) error {
	if _, err := encoding(c.Get(fiber.HeaderContentEncoding)); err != nil {
		return err
	}
	if n := c.Request().Header.ContentLength(); n > max {
		return syncproto.Errorf(syncproto.CodeBodyTooLarge, "request body is larger than %d bytes", max)
	}
	return nil
}

// encoding accepts no encoding, "identity" or one "gzip", and nothing
// else: a body compressed twice is refused, not inflated twice.
func encoding(h string) (string, error) {
	enc := strings.ToLower(strings.TrimSpace(h))
	switch enc {
	case "", "identity":
		return "", nil
	case "gzip":
		return "gzip", nil
	}
	if strings.Contains(enc, ",") {
		return "", syncproto.Errorf(syncproto.CodeUnsupportedEncoding,
			"content encoding %q stacks several encodings; send the body compressed once with gzip, or not at all", clip(enc))
	}
	return "", syncproto.Errorf(syncproto.CodeUnsupportedEncoding, "content encoding %q is not supported; use gzip", clip(enc))
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Read reads the request body once, through a reader limited to
// lim.Max bytes, inflates it when it is gzip-encoded (to at most
// lim.Max*lim.Ratio bytes), and puts the decoded bytes back as the
// request's body with no Content-Encoding: from then on c.Body(),
// c.FormValue and the multipart reader see plain, bounded bytes. A second
// call does nothing, so a handler reached after authentication (which
// reads the body under the full limit) keeps that body, and a body
// refused once is refused again with the same error.
func Read(c *fiber.Ctx, lim Limits) error {
	if done, ok := c.Locals(readKey{}).(result); ok {
		return done.err // a refused body stays refused: its stream is spent
	}
	err := read(c, lim)
	c.Locals(readKey{}, result{err})
	return err
}

type result struct{ err error }

func read(c *fiber.Ctx, lim Limits) error {
	enc, err := encoding(c.Get(fiber.HeaderContentEncoding))
	if err != nil {
		return err
	}
	req := c.Request()
	if req.Header.ContentLength() > lim.Max {
		return syncproto.Errorf(syncproto.CodeBodyTooLarge, "request body is larger than %d bytes", lim.Max)
	}
	var raw []byte
	if s := req.BodyStream(); s != nil {
		raw, err = io.ReadAll(io.LimitReader(s, int64(lim.Max)+1))
		if err != nil {
			return syncproto.Errorf(syncproto.CodeMalformedBody, "request body could not be read to its end")
		}
	} else {
		raw = req.Body()
	}
	if len(raw) > lim.Max {
		return syncproto.Errorf(syncproto.CodeBodyTooLarge, "request body is larger than %d bytes", lim.Max)
	}
	body := raw
	if enc == "gzip" {
		if body, err = Decode(raw, lim.inflated()); err != nil {
			return err
		}
	}
	req.SetBodyRaw(body)
	req.Header.Del(fiber.HeaderContentEncoding)
	req.Header.SetContentLength(len(body))
	return nil
}

// Decode inflates a gzip body, refusing more than limit bytes once
// decompressed. The gzip trailer's size field (the size modulo 4 GiB, as
// the sender claims it) sizes the buffer; a lying or truncated trailer
// only costs the usual growth of the buffer, never more than the limit.
func Decode(raw []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, syncproto.Errorf(syncproto.CodeMalformedBody, "body is not valid gzip")
	}
	defer zr.Close()
	hint := int64(0)
	if len(raw) >= 18 { // a gzip header (10 bytes) was read; the trailer is 8
		hint = int64(binary.LittleEndian.Uint32(raw[len(raw)-4:]))
	}
	// Deflate inflates at most about 1032:1, which also bounds what a
	// small body's forged trailer can make us reserve. The buffer never
	// grows past limit+1 bytes: one byte over is enough to refuse.
	buf := make([]byte, 0, min(hint, limit, int64(len(raw))*1032)+1)
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return nil, syncproto.Errorf(syncproto.CodeBodyTooLarge, "decompressed body is larger than %d bytes", limit)
			}
			buf = slices.Grow(buf, int(min(int64(cap(buf)), limit+1-int64(cap(buf)))))
		}
		n, err := zr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, syncproto.Errorf(syncproto.CodeMalformedBody, "body is not valid gzip")
		}
	}
	if int64(len(buf)) > limit {
		return nil, syncproto.Errorf(syncproto.CodeBodyTooLarge, "decompressed body is larger than %d bytes", limit)
	}
	return buf, nil
}
