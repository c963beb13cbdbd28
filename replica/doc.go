// Package replica is the merge engine: the one place where changes enter
// a SQLite replica, on the server and on devices alike, so that both
// sides converge by the same code (docs/DESIGN.md, invariant 1).
//
// A replica stores each cell twice. _cells holds, for every (table, pk,
// column) ever written, the winning value and its version; it is the
// truth, and what a pull reads. The domain tables hold the same winning
// values as rows, for the application's plain SQL; they are a view that
// Apply keeps in step, and that Rematerialise rebuilds from _cells when
// cells had to be taken back.
//
// Apply takes a batch or a page of changes inside the caller's
// transaction. It reads the cells held for every row the changes touch
// (a few queries, not one per cell), decides each cell with
// syncproto.Compare against the version held (already held, older,
// newer; concurrent when the change's prev is not the held version),
// writes the winners to _cells, then brings each touched domain row in
// line: written whole when it is new, deleted when its tombstone is set,
// updated column by column otherwise. Options says which kind of replica
// is written: the server numbers every cell that changes for pulls
// (AssignSeq), records concurrent writes that lost (RecordConflicts) and
// tags cells of owned rows with the row's owner (Owners) so that a pull
// can read one person's cells by index; a device does none of these.
// Cells of a table or column the local schema does not know yet are kept
// in _cells and materialised when a migration adds the column.
//
// Reading back is ReadPage (cells above a sequence number, in order) and
// ReadOwned (the same, restricted to some owners and the untagged cells).
// Prepared keeps Apply's statements prepared on the writer connection
// across transactions, since preparing them costs more than running
// them.
//
// Of this module, the package imports only syncproto
// (internal/layering enforces it), so that the merge can be reasoned
// about, and reused by another SDK, without the server or the device
// around it.
package replica
