-- +goose Up
-- One version record per row instead of one row per cell (issue 13; see
-- package replica's doc and docs/DESIGN.md). Values live once, in the
-- domain tables; a record holds the row's owner and pull sequence (on the
-- server), its tombstone, every column's version packed in clocks, and in
-- extra the values of columns this replica does not know and, while the
-- row is deleted, of the others. The conversion of _cells is Go code run
-- when the replica opens (replica.Init), which then drops _cells.
CREATE TABLE _tables (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE _columns (
    tbl  INTEGER NOT NULL,
    bit  INTEGER NOT NULL,
    name TEXT    NOT NULL,
    PRIMARY KEY (tbl, bit),
    UNIQUE (tbl, name)
);
CREATE TABLE _nodes (
    id   INTEGER PRIMARY KEY,
    node TEXT NOT NULL UNIQUE
);
CREATE TABLE _owners (
    id    INTEGER PRIMARY KEY,
    owner TEXT NOT NULL UNIQUE
);
CREATE TABLE _rows (
    tbl     INTEGER NOT NULL,
    pk      BLOB    NOT NULL,
    owner   INTEGER,
    seq     INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0,
    -- the newest of the columns' versions (retention, the clock at open)
    hlc     INTEGER NOT NULL DEFAULT 0,
    clocks  BLOB    NOT NULL,
    extra   TEXT,
    PRIMARY KEY (tbl, pk)
) WITHOUT ROWID;
-- Pull order (the server numbers rows; devices leave seq NULL, so both
-- indexes stay empty there).
CREATE UNIQUE INDEX _rows_seq ON _rows (seq) WHERE seq IS NOT NULL;
CREATE INDEX _rows_owner_seq ON _rows (owner, seq) WHERE seq IS NOT NULL;

-- +goose Down
DROP TABLE _rows;
DROP TABLE _owners;
DROP TABLE _nodes;
DROP TABLE _columns;
DROP TABLE _tables;
