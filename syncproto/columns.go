package syncproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MediaTypeColumns names the column-oriented binary form of an exchange
// answer. A device that can read it says so in its Accept header; any
// other device gets the JSON answer, unchanged.
const MediaTypeColumns = "application/vnd.relais.columns"

// The column-oriented form exists because a pull is mostly keys and a
// few low-cardinality values, and a general-purpose compressor reading
// row-interleaved JSON pays for every key twice (once in text, once as a
// back-reference it cannot always reach) and for every enum value as a
// fresh match. Here:
//
//   - names (tables, columns, nodes) travel once per page, and rows refer
//     to them by small index;
//   - the changes are cut into groups exactly as in the "rows" form (same
//     row, same version, no column twice), and a group's columns are named
//     by a "shape", an index into the page's list of column lists;
//   - each column's values travel together in their own stream, so
//     similar values sit next to each other;
//   - a value already seen in the same column is a back-reference to it
//     (enum values, dates, the few structures and conseillers);
//   - UUIDs in canonical form (all keys, most references) travel once
//     per page: a key or reference seen earlier in the page, in any
//     table, is a back-reference (an accompagnement names the activity
//     sent just before it). A new UUIDv7 is split into its timestamp,
//     written as the difference from the previous one's (keys are made
//     in bursts, so a few bytes), and its 74 random bits, packed without
//     the 6 fixed version and variant bits in a stream of their own,
//     where no compressor could do better; other UUIDs travel as 16
//     bytes;
//   - hlc readings are differences from the previous group's, as in rows.
//
// The result is then gzip-compressed like any answer (zstd was measured
// and gave nothing more on this form).
//
// Layout, every integer a varint (zigzag where signed):
//
//	"RC" 1                           magic and version
//	len head                         JSON of the answer without its changes
//	ntables {name ncols {column}}    names of the tables and their columns
//	nnodes {node}                    node ids of versions and prevs
//	nshapes {table ncols {column}}   column lists, as indexes
//	ngroups
//	len stream ...                   shapes, keys, hlcs, nodes, prevs, uuid
//	                                 heads, uuid bits, then one stream per
//	                                 table and column
//
// Groups are rebuilt in order by taking, for each, the next entry of the
// shape, key, hlc and node streams and one value from the stream of each
// of its columns, so decoding gives back exactly the changes encoded, in
// their order. The decoder is strict: an index out of range, a stream
// that ends early or has bytes left over, a string that is not UTF-8, a
// number that is not finite, all refuse the whole answer.

var columnsMagic = []byte{'R', 'C', 1}

// The codes of a key in the keys stream.
const (
	keyNewUUID = 0 // the next UUID of the uuid streams
	keyString  = 1 // a length and the bytes, inline
	keyRefBase = 2 // 2+d: the UUID d places back in the page's list
)

// The codes of a value in a column's stream.
const (
	valNull    = 0
	valInt     = 1 // zigzag varint
	valFloat   = 2 // length and shortest decimal text (exact for float64)
	valNewUUID = 3 // the next UUID of the uuid streams
	valString  = 4 // length and bytes
	valJSON    = 5 // length and JSON text: any other value, read as DecodeResponse would
	valRefBase = 6 // 6+2d: the column's value d places back; 7+2d: the page's UUID d places back
)

// Fixed streams, before the per-column ones.
const (
	streamShapes = iota
	streamKeys
	streamHLCs
	streamNodes
	streamPrevs
	streamUUIDHeads // per new UUID: zigzag(timestamp difference)<<1 for a UUIDv7, or 1 and 16 bytes
	streamUUIDBits  // the random bits of each new UUIDv7, 74 per UUID, packed
	fixedStreams
)

// EncodeResponseColumns writes an answer in the column form.
func EncodeResponseColumns(r *SyncResponse) ([]byte, error) {
	type plain SyncResponse
	head, err := json.Marshal(struct {
		plain
		Changes []Change `json:"changes,omitempty"`
	}{plain: plain(*r)})
	if err != nil {
		return nil, fmt.Errorf("encode answer head: %w", err)
	}
	return answerForm.encode(head, r.Changes)
}

// DecodeResponseColumns reads an answer in the column form. Its
// errors carry the code malformed_body.
func DecodeResponseColumns(data []byte) (*SyncResponse, error) {
	head, changes, err := answerForm.decode(data)
	if err != nil {
		return nil, err
	}
	var resp SyncResponse
	if err := decodeStrict(head, (*responseHead)(&resp)); err != nil {
		return nil, err
	}
	resp.Changes = changes
	return &resp, nil
}

// columnForm is one message of the column form: its magic, then a JSON
// head (the message's fields but its changes), then the changes in
// columns. Answers and requests differ only by magic and head.
type columnForm struct {
	magic []byte
	what  string // for messages: "answer", "request"
	// most is how many changes the message may carry, and tooMany the
	// code of the refusal of a message that carries more.
	most    int
	tooMany Code
}

var answerForm = columnForm{magic: columnsMagic, what: "answer", most: MaxBatchChanges + MaxPageLimit, tooMany: CodeMalformedBody}

func (f columnForm) encode(head []byte, changes []Change) ([]byte, error) {
	var e columnEncoder
	if err := e.encode(changes); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(head)+e.size()+64)
	out = append(out, f.magic...)
	out = appendBytes(out, head)
	return e.appendTo(out), nil
}

// decode splits a message into its JSON head, not yet read, and its
// changes. Its errors carry the code malformed_body, or f.tooMany.
func (f columnForm) decode(data []byte) (head []byte, changes []Change, err error) {
	if !bytes.HasPrefix(data, f.magic) {
		return nil, nil, Errorf(CodeMalformedBody, "%s is not in the column form (bad magic)", f.what)
	}
	rd := &byteReader{b: data[len(f.magic):]}
	if head, err = rd.bytes(); err != nil {
		return nil, nil, Errorf(CodeMalformedBody, "column %s head: %s", f.what, err)
	}
	if changes, err = decodeColumns(rd, f.most); err != nil {
		if errors.Is(err, errTooManyCells) {
			return nil, nil, Errorf(f.tooMany, "a column %s may carry at most %d changes", f.what, f.most).With(DetailMax, f.most)
		}
		return nil, nil, Errorf(CodeMalformedBody, "column %s: %s", f.what, clip(err.Error()))
	}
	return head, changes, nil
}

// responseHead reads the JSON head of a column answer: every field of
// SyncResponse but the changes, which travel in columns. A head that
// carries changes anyway is refused rather than silently merged.
type responseHead SyncResponse

func (h *responseHead) UnmarshalJSON(data []byte) error {
	head, wire, err := decodeAnswerJSON(data)
	if err != nil {
		return err
	}
	if wire.Changes != nil || wire.Rows != nil {
		return errors.New("changes belong in the columns, not in the head")
	}
	*h = responseHead(head)
	return nil
}

// IsColumns reports whether a Content-Type names the column form.
func IsColumns(contentType string) bool {
	t, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(t), MediaTypeColumns)
}

// AcceptsColumns reports whether an Accept header lists the column form.
func AcceptsColumns(accept string) bool {
	for accept != "" {
		var item string
		item, accept, _ = strings.Cut(accept, ",")
		mediaType, params, _ := strings.Cut(item, ";")
		if !strings.EqualFold(strings.TrimSpace(mediaType), MediaTypeColumns) {
			continue
		}
		// q=0 means "not this one" (RFC 9110, 12.4.2).
		for _, p := range strings.Split(params, ";") {
			name, value, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(name), "q") && strings.Trim(strings.TrimSpace(value), "0.") == "" {
				return false
			}
		}
		return true
	}
	return false
}
