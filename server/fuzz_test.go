package server

import (
	"bytes"
	"context"
	"errors"
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

// FuzzVerifyToken hands the token verifier arbitrary text, as an
// Authorization header would: it refuses everything it did not sign,
// with unauthorized or token_expired, and never panics.
func FuzzVerifyToken(f *testing.F) {
	s, err := New(context.Background(), Config{DataDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	tok, _, err := s.tokens.Issue("u1", "d1", "admin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("eyJhbGciOiJIUzI1NiIsImtpZCI6IngifQ.e30.c2ln")
	f.Add(tok[:len(tok)-2] + "AA")
	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := s.tokens.Verify(context.Background(), raw)
		if err != nil {
			var pe *syncproto.Error
			if !errors.As(err, &pe) || (pe.Code != syncproto.CodeUnauthorized && pe.Code != syncproto.CodeTokenExpired) {
				t.Fatalf("refusal with the wrong error: %v", err)
			}
			return
		}
		if raw != tok {
			// Another encoding of the same signed token would be a
			// malleability problem; only the issued text verifies.
			t.Fatalf("verified a token that was not issued: %q (claims %+v)", raw, claims)
		}
	})
}
