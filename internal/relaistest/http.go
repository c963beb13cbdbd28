package relaistest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/relais-numerique/relais/syncproto"
)

// PostJSON posts body (marshalled to JSON unless it is already []byte) to
// path on the server, with a bearer token when token is not empty, and
// returns the status and the answer's bytes as they came on the wire,
// decompressed. Tests that must check what crosses the network (a
// personal column that must not) read these bytes.
func (s *Server) PostJSON(t testing.TB, path, token string, body any) (int, []byte) {
	t.Helper()
	data, ok := body.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(body); err != nil {
			t.Fatalf("encode %s body: %v", path, err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// A transport of its own, so that Go does not decompress for us and
	// hide what the server sent.
	res, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("POST %s: read answer: %v", path, err)
	}
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("POST %s: answer is not gzip: %v", path, err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			t.Fatalf("POST %s: answer is not gzip: %v", path, err)
		}
	}
	return res.StatusCode, raw
}

// ErrorCode returns the protocol error code of an answer, or "".
func ErrorCode(raw []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &e) // not an error answer: no code
	return e.Error.Code
}

// LoginHTTP logs a device in with a plain HTTP request and returns the
// server's answer, failing the test unless it is a success.
func (s *Server) LoginHTTP(t testing.TB, email, password, deviceID string) syncproto.TokenResponse {
	t.Helper()
	status, raw := s.PostJSON(t, syncproto.PathLogin, "", syncproto.LoginRequest{Email: email, Password: password, DeviceID: deviceID})
	if status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, status, raw)
	}
	var ans syncproto.TokenResponse
	if err := json.Unmarshal(raw, &ans); err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	return ans
}
