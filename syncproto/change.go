package syncproto

import "fmt"

// DeletedColumn is the name of a row's tombstone cell. Writing 1 to it
// deletes the row, writing 0 re-creates it; because it is an ordinary cell,
// a delete and a concurrent edit are ordered by the same LWW rule as any
// two writes, and edits to other cells never bring a deleted row back.
const DeletedColumn = "_deleted"

// Change is one write of one cell, as it travels between replicas.
//
// Prev is the version the writer held for the cell when it wrote it. A
// receiver holding a different version knows the two writes were
// concurrent: LWW still picks the winner, and the loser is recorded as a
// conflict instead of vanishing.
type Change struct {
	Table   string  `json:"tbl"`
	PK      string  `json:"pk"`
	Column  string  `json:"col"`
	Value   any     `json:"val"`
	Version Version `json:"ver"`
	Prev    Version `json:"prev,omitzero"`
}

// Cell names a cell, the unit of conflict.
type Cell struct {
	Table  string `json:"tbl"`
	PK     string `json:"pk"`
	Column string `json:"col"`
}

// Cell returns the cell the change writes.
func (c *Change) Cell() Cell { return Cell{c.Table, c.PK, c.Column} }

// RowKey names a row: the unit the scope rules, domain rules and
// materialisation work on.
type RowKey struct {
	Table string `json:"tbl"`
	PK    string `json:"pk"`
}

// Row returns the row the change writes.
func (c *Change) Row() RowKey { return RowKey{c.Table, c.PK} }

// Batch is a group of changes pushed together. Its id makes the push
// idempotent: a batch re-sent after its answer was lost is acknowledged
// again and applied once.
type Batch struct {
	ID      string   `json:"id"`
	Changes []Change `json:"changes"`
}

// SyncRequest is one exchange from a device: an optional push and a pull
// from Cursor, so that a sync costs one round trip on a slow link.
type SyncRequest struct {
	Push   *Batch    `json:"push,omitempty"`
	Cursor int64     `json:"cursor"`
	Limit  int       `json:"limit,omitempty"`
	Clock  Timestamp `json:"clock"`
	// Pending is the number of changes waiting on the device, reported so
	// coordinators can see unsynced work across the fleet.
	Pending       int    `json:"pending"`
	AppVersion    string `json:"app,omitempty"`
	SchemaVersion int64  `json:"schema,omitempty"`
	// Resync asks the pull to include the cells this device wrote, which
	// pulls normally skip: a device sets it while it pulls everything
	// again after the server refused one of its batches, to take back
	// the server's versions of the refused cells.
	//
	// Devices of this version never set it (a refusal no longer costs a
	// re-download, see Refusal); the server still honours it for older
	// ones.
	Resync bool `json:"resync,omitempty"`
	// RefuseRows says the device understands SyncResponse.Refused: the
	// server then applies what it can of a batch and lists the rows it
	// refused, instead of refusing the whole batch for one bad row. A
	// device that does not set it (an older SDK) gets the whole-batch
	// refusal it knows.
	RefuseRows bool `json:"refuse_rows,omitempty"`
}

// Refusal is one row of a pushed batch that the server did not apply,
// because the row breaks a domain rule, the sender's scope, or the
// schema's types. Every change the batch made to that row is refused
// together (Columns); the batch's other rows are applied and
// acknowledged as usual.
type Refusal struct {
	Table   string   `json:"tbl"`
	PK      string   `json:"pk"`
	Columns []string `json:"cols"`
	Code    Code     `json:"code"`
	// Reason says, in French, what the conseillère must fix.
	Reason string `json:"reason"`
	// Rule names the domain rule broken, for invalid_row.
	Rule string `json:"rule,omitempty"`
	// Current is the server's version of the refused cells that the
	// sender may see, so that the device can put the row back as the
	// server holds it without downloading anything else. A refused
	// cell missing from it is one the server does not hold (a new row)
	// or the sender may not see: the device drops its copy.
	Current []Change `json:"current,omitempty"`
}

// Row names the refused row.
func (r *Refusal) Row() RowKey { return RowKey{r.Table, r.PK} }

// ConflictReport tells the pusher that one of its writes met a concurrent
// write, and which of the two won.
type ConflictReport struct {
	Cell
	Winner Version `json:"winner"`
	Loser  Version `json:"loser"`
}

// SyncResponse answers a SyncRequest: the acknowledgement of the pushed
// batch, then one page of cells above the request's cursor.
type SyncResponse struct {
	Ack       string           `json:"ack,omitempty"`
	Applied   int              `json:"applied"`
	Conflicts []ConflictReport `json:"conflicts,omitempty"`
	// Refused lists the rows of the acknowledged batch the server did
	// not apply (only for a request with RefuseRows). A re-sent batch
	// gets the same list again.
	Refused []Refusal `json:"refused,omitempty"`
	Changes []Change  `json:"changes"`
	Cursor  int64     `json:"cursor"`
	More    bool      `json:"more"`
	Clock   Timestamp `json:"clock"`
	// History identifies the server's history; it changes when the server
	// is restored from a backup (see client-sdk/device/history.go).
	History string `json:"history,omitempty"`
	// HistoryParent is the history a restored server's backup was taken
	// from, and HistorySharedSeq the last sequence number the two share:
	// a device that last synced with the parent has every cell up to it
	// and pulls again from there (empty and 0 on a server never restored).
	HistoryParent    string `json:"history_parent,omitempty"`
	HistorySharedSeq int64  `json:"history_shared_seq,omitempty"`
}

// Limits on what one exchange may carry. They bound the server's memory
// per request; a device splits its outbox to fit.
//
// DefaultPageLimit is what the SDK asks for. Every exchange costs about
// a kilobyte of headers and bearer token, so fewer, larger pages save
// bytes (and a durable commit per page on the device); 5,000 cells in
// the column form weigh about what 2,000 did in JSON, so a page cut on a
// 2G link loses about as much as before. Larger pages would save a
// little more, for more to lose on a cut and more memory per exchange on
// both sides (BENCHMARKS.md, "Figures behind the code").
const (
	MaxBatchChanges  = 5000
	DefaultPageLimit = 5000
	MaxPageLimit     = 10000
	MaxTextBytes     = 32 << 10
	MaxNodeBytes     = 64
)

// ValueText renders a cell value as the text that ids, owners and days
// are compared by ("" for NULL), whatever type was written: the scope
// rules compare owners this way, and the owner tags the merge writes on
// cells must say the same.
func ValueText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	default:
		return fmt.Sprint(x)
	}
}
