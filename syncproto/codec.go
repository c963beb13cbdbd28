package syncproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DecodeRequest reads one exchange request. Numbers are kept as
// json.Number so that Schema.Check can tell 3 from 3.5 and refuse an
// integer that does not fit, instead of silently rounding through float64.
func DecodeRequest(body []byte) (*SyncRequest, error) {
	var req SyncRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	return &req, nil
}

// validate checks what a decoded request may hold, whatever its form.
func (req *SyncRequest) validate() error {
	if req.Limit < 0 || req.Cursor < 0 {
		return Errorf(CodeMalformedBody, "cursor and limit must not be negative")
	}
	if len(req.AppVersion) > MaxAppVersion || !utf8.ValidString(req.AppVersion) || strings.ContainsFunc(req.AppVersion, unicode.IsControl) {
		return Errorf(CodeMalformedBody, "app must be printable text of at most %d bytes", MaxAppVersion).With(DetailMax, MaxAppVersion)
	}
	if req.Push != nil {
		if req.Push.ID == "" || len(req.Push.ID) > 64 {
			return Errorf(CodeMalformedBody, "a pushed batch needs an id of at most 64 characters")
		}
		if len(req.Push.Changes) > MaxBatchChanges {
			return Errorf(CodeTooManyChanges, "a batch may carry at most %d changes, got %d",
				MaxBatchChanges, len(req.Push.Changes)).With(DetailMax, MaxBatchChanges)
		}
	}
	return nil
}

// DecodeResponse reads one exchange answer on the device.
func DecodeResponse(body []byte) (*SyncResponse, error) {
	var resp SyncResponse
	if err := decodeStrict(body, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func decodeStrict(body []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		return Errorf(CodeMalformedBody, "body is not a valid exchange: %s", clip(err.Error()))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(CodeMalformedBody, "body has data after the JSON document")
	}
	return nil
}

// DecodeError reads an error envelope; it returns a generic error when the
// body is not one (a proxy's HTML page, say).
func DecodeError(status int, body []byte) *Error {
	var eb ErrorBody
	if err := json.Unmarshal(body, &eb); err == nil && eb.Error != nil && eb.Error.Code != "" {
		return eb.Error
	}
	return Errorf(CodeInternal, "server answered HTTP %d: %s", status, clip(string(body)))
}

// String makes the error body readable in logs.
func (b ErrorBody) String() string { return fmt.Sprint(b.Error) }
