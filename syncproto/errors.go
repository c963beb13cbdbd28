package syncproto

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error name. Clients switch on codes,
// never on messages, so codes never change meaning once published.
type Code string

const (
	CodeMalformedBody       Code = "malformed_body"
	CodeUnsupportedEncoding Code = "unsupported_encoding"
	CodeBodyTooLarge        Code = "body_too_large"
	CodeTooManyChanges      Code = "too_many_changes"
	CodeUnknownTable        Code = "unknown_table"
	CodeUnknownColumn       Code = "unknown_column"
	CodeBadValue            Code = "bad_value"
	CodeBadChange           Code = "bad_change"
	CodeClockAhead          Code = "clock_ahead"
	CodeInvalidRow          Code = "invalid_row"
	CodeUnauthorized        Code = "unauthorized"
	CodeTokenExpired        Code = "token_expired"
	CodeBadCredentials      Code = "bad_credentials"
	CodeForbidden           Code = "forbidden"
	CodeForbiddenScope      Code = "forbidden_scope"
	CodeDeviceRevoked       Code = "device_revoked"
	CodeUserDisabled        Code = "user_disabled"
	CodeRateLimited         Code = "rate_limited"
	CodeNotFound            Code = "not_found"
	CodeConflict            Code = "conflict"
	CodeInternal            Code = "internal"
)

// Error is the protocol's error: a code, a sentence for a person, and
// optional details (the server's time for clock_ahead, the rule for
// invalid_row, the offending change's index in the batch...).
type Error struct {
	Code    Code           `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// Keys of Error.Details. Clients read details by these names, so like
// codes they never change meaning once published.
const (
	DetailIndex             = "index"               // the offending change's position in the batch
	DetailTable             = "table"               // the table of the refused row
	DetailPK                = "pk"                  // the primary key of the refused row
	DetailRule              = "rule"                // the domain rule an invalid_row broke
	DetailMax               = "max"                 // the limit a too_many_changes passed
	DetailServerTime        = "server_time"         // clock_ahead: the server's time, Unix ms
	DetailMaxAheadMs        = "max_ahead_ms"        // clock_ahead: how far ahead a clock may be, ms
	DetailRetryAfterSeconds = "retry_after_seconds" // rate_limited: when to try again
	DetailWipe              = "wipe"                // true: the device must erase its data
	DetailLogin             = "login"               // true: the device must log in again
)

// ErrorBody is the JSON envelope every error answer uses.
type ErrorBody struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf builds an Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// With returns e with one more detail set.
func (e *Error) With(key string, value any) *Error {
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	e.Details[key] = value
	return e
}

// CodeOf returns the code of the first *Error in err's chain, or "".
func CodeOf(err error) Code {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
