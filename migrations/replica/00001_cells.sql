-- +goose Up
-- One row per cell ever written: its current value and version. The value
-- is kept here as well as in the domain table so that a deleted row's cells
-- keep their versions, cells of columns this replica does not know yet are
-- kept aside, and the server can page through changed cells by seq alone.
CREATE TABLE _cells (
    tbl  TEXT    NOT NULL,
    pk   TEXT    NOT NULL,
    col  TEXT    NOT NULL,
    val,
    hlc  INTEGER NOT NULL,
    node TEXT    NOT NULL,
    -- seq orders cells for pull on the server; devices leave it NULL.
    seq  INTEGER,
    PRIMARY KEY (tbl, pk, col)
) WITHOUT ROWID;
CREATE UNIQUE INDEX _cells_seq ON _cells (seq) WHERE seq IS NOT NULL;

-- Concurrent writes: both values, both versions. The loser is kept here
-- so that no write disappears without a trace.
CREATE TABLE _conflicts (
    id          INTEGER PRIMARY KEY,
    tbl         TEXT    NOT NULL,
    pk          TEXT    NOT NULL,
    col         TEXT    NOT NULL,
    winner_val,
    winner_hlc  INTEGER NOT NULL,
    winner_node TEXT    NOT NULL,
    loser_val,
    loser_hlc   INTEGER NOT NULL,
    loser_node  TEXT    NOT NULL,
    detected_at INTEGER NOT NULL,
    resolved_at INTEGER,
    resolved_by TEXT,
    resolution  TEXT
);
CREATE UNIQUE INDEX _conflicts_loser ON _conflicts (tbl, pk, col, loser_hlc, loser_node);

-- The replica's own identity and counters. node breaks HLC ties; hlc is the
-- last clock reading issued or seen, persisted so the clock never goes back
-- after a restart; seq is the last pull sequence given out (server);
-- applying is set while remote changes are applied so that the device's
-- capture triggers do not echo them back.
CREATE TABLE _replica (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    node     TEXT    NOT NULL,
    hlc      INTEGER NOT NULL DEFAULT 0,
    seq      INTEGER NOT NULL DEFAULT 0,
    applying INTEGER NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE _replica;
DROP TABLE _conflicts;
DROP TABLE _cells;
