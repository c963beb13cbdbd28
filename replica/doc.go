// Package replica is the merge engine: the one place where changes enter
// a SQLite replica, on the server and on devices alike, so that both
// sides converge by the same code (docs/DESIGN.md, invariant 1).
//
// # Layout: one version record per row
//
// The cell (table, pk, column) is the unit of conflict, not of storage.
// Each value lives once, in its domain table (activite, beneficiaire…),
// where the application reads and writes it with plain SQL. Beside it,
// _rows holds one record per row ever seen (migration replica/00003):
//
//	tbl     the table's number in _tables
//	pk      the row's key: the 16 bytes of its UUID (PKArg; any other
//	        key as text)
//	owner   server: the row's owner, by its number in _owners; a pull
//	        reads one person's rows by the index (owner, seq)
//	seq     server: the row's pull sequence number, given anew each time
//	        a column of it changes
//	deleted the row's tombstone as the domain table reflects it (1: no
//	        domain row)
//	hlc     the newest of its columns' versions (retention, the clock)
//	clocks  every column's version, packed (encodeClocks): per column its
//	        number in _columns (0 is _deleted), its hlc, its node's number
//	        in _nodes, the seq of its last change; varints, each a
//	        difference from the previous column's, so columns written
//	        together cost about four bytes each
//	extra   JSON object of values kept beside the versions: columns this
//	        replica's schema does not have yet (kept, never dropped, and
//	        moved into the domain row by MaterialiseColumn when a
//	        migration adds them), and every value of a deleted row, so
//	        that an explicit re-creation brings them back and nothing
//	        but the record has to be scrubbed by an erasure
//
// Dictionary numbers are local to a replica and never travel. They are
// read again by each transaction (loadDict): a number given out in a
// transaction that rolled back may be given to another name later.
//
// # Applying changes
//
// Apply takes a batch or a page inside the caller's transaction. It reads
// the records of every row the changes touch (a query per table and few
// hundred rows), decides each cell with syncproto.Decide against the
// version held, updates the records in memory, then writes each changed
// record once (multi-row upserts) and brings the domain row in line:
// written whole when new, updated column by column, its values moved to
// extra when deleted and back when re-created. Options says which kind
// of replica is written: the server numbers every row that changes
// (AssignSeq, one number per row per Apply), records concurrent writes
// that lost (RecordConflicts, with the held value read from the domain
// row) and keeps each row's owner (Owners); a device passes Pending, the
// versions of its own writes still in its outbox, which it holds as well
// (its records hold only what it received or had acknowledged, see
// client-sdk/device/rows.go), and acknowledges its own writes with
// VersionsOnly.
//
// # Reading
//
// ReadPage and ReadOwned return the rows numbered after a cursor, in
// order, every cell of each: a row moves to a new number whenever one of
// its columns changes, so a reader whose cursor passed an older column's
// number may have passed it after the row had moved on; sending the
// whole row is what keeps "a device past a cursor holds every cell
// numbered up to it" true. HeldRow, Values, Versions and EachCell read
// cells back (values from the domain row or extra, versions from
// clocks); Renumber gives rows new numbers (scope.Reannounce); PutBack
// puts a refused row back as the server holds it (device).
//
// # Engines
//
// The statements over the store are plain SQL that PostgreSQL also runs
// (INSERT … ON CONFLICT, excluded, RETURNING, IN lists of parameters;
// unhex and the two-argument MAX come from the compat migrations there),
// so a server keeps its replica in either (migrations/postgres/replica:
// bytea keys and clocks, extra and the conflict log's values as text).
// Only LoadSchema and the conversion of _cells read SQLite's catalogue.
//
// Several servers on one PostgreSQL write the same replica at once
// (Options.Shared). Apply then reads and decides without locks, draws
// its sequence numbers (Options.Draw, pgstore.NextSeq: the counter row
// of _replica, locked until the transaction ends) only once everything
// is decided, and checks under that lock that the records it read are
// still those held (a record's number changes with every write to it);
// if another server committed one in between, it decides again, locked.
// It writes nothing before the lock, and a name new to the dictionaries
// is written after taking it: two servers never wait for each other's
// uncommitted rows in opposite orders. Renumber takes the lock first.
//
// A replica written by the per-cell layout (_cells) is converted by Init
// on its first open (upgradeCells), in one transaction.
//
// Of this module, the package imports only syncproto
// (internal/layering enforces it), so that the merge can be reasoned
// about, and reused by another SDK, without the server or the device
// around it.
package replica
