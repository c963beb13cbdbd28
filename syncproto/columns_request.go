package syncproto

import (
	"encoding/json"
	"fmt"
)

// The column form of a request carries a pushed batch the way an answer
// carries a page (see columns.go): a device's batch is mostly keys,
// references and a few enum values, which the column form writes once
// each. The request's other fields travel in the JSON head, the batch by
// its id alone:
//
//	"RQ" 1                           magic and version
//	len head                         JSON of the request, "push" holding only "id"
//	…                                the batch's changes, as in an answer
//
// A device sends it with Content-Type MediaTypeColumns once the server
// has said it reads it (HeaderAcceptPost); JSON stays accepted.

// HeaderAcceptPost is the header in which the server lists, on its
// exchange answers, the forms of request body it reads (RFC 9110 list
// syntax, as Accept). A device sends the column form only to a server
// that lists MediaTypeColumns there: an older server would refuse it.
const HeaderAcceptPost = "Accept-Post"

var requestForm = columnForm{magic: []byte{'R', 'Q', 1}, what: "request", most: MaxBatchChanges, tooMany: CodeTooManyChanges}

// requestHead is the JSON head of a request in the column form.
type requestHead struct {
	plainRequest
	// Push hides the embedded request's: the changes are in columns.
	Push *batchHead `json:"push,omitempty"`
}

type plainRequest SyncRequest

type batchHead struct {
	ID string `json:"id"`
	// A head that carries changes anyway is refused rather than merged.
	Changes json.RawMessage `json:"changes,omitempty"`
	Rows    json.RawMessage `json:"rows,omitempty"`
}

// EncodeRequestColumns writes a request in the column form.
func EncodeRequestColumns(r *SyncRequest) ([]byte, error) {
	h := requestHead{plainRequest: plainRequest(*r)}
	var changes []Change
	if r.Push != nil {
		h.Push = &batchHead{ID: r.Push.ID}
		changes = r.Push.Changes
	}
	head, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode request head: %w", err)
	}
	return requestForm.encode(head, changes)
}

// DecodeRequestColumns reads a request in the column form, with the
// same checks as DecodeRequest. Its errors carry the code
// malformed_body, or too_many_changes.
func DecodeRequestColumns(data []byte) (*SyncRequest, error) {
	head, changes, err := requestForm.decode(data)
	if err != nil {
		return nil, err
	}
	var h requestHead
	if err := decodeStrict(head, &h); err != nil {
		return nil, err
	}
	req := SyncRequest(h.plainRequest)
	switch {
	case h.Push != nil && (h.Push.Changes != nil || h.Push.Rows != nil):
		return nil, Errorf(CodeMalformedBody, "column request: changes belong in the columns, not in the head")
	case h.Push != nil:
		req.Push = &Batch{ID: h.Push.ID, Changes: changes}
	case len(changes) > 0:
		return nil, Errorf(CodeMalformedBody, "column request: changes without a batch")
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	return &req, nil
}
