-- +goose Up
-- One outbox entry per row change instead of one per cell (issue 13; see
-- client-sdk/device/outbox.go and docs/DESIGN.md). An entry names the
-- table by its number, the row by its id, the columns changed as bits of
-- mask (bit 0 the tombstone, bit i the table's i-th synced column in
-- declaration order), and carries the clock reading of the newest write
-- folded in; every change of it is stamped (hlc, the device's node). An
-- entry is open (vals NULL) until frozen; the capture triggers upsert
-- the row's only open entry. Frozen, it carries its values (vals, JSON),
-- prev (JSON column -> [hlc, node]) for the columns whose prev is known
-- without the record, and base, a copy of the row's record clocks, for
-- the others.
DROP TRIGGER IF EXISTS _outbox_stamp;
DROP INDEX IF EXISTS _outbox_unresolved;
DROP INDEX IF EXISTS _outbox_cell;
DROP INDEX IF EXISTS _outbox_batch;
-- Copied aside, not renamed: a rename would rewrite the capture
-- triggers' text to name the old table (Open installs new ones).
CREATE TABLE _outbox_cells AS SELECT * FROM _outbox;
DROP TABLE _outbox;
CREATE TABLE _outbox (
    id    INTEGER PRIMARY KEY,
    tbl   INTEGER NOT NULL,
    pk    TEXT    NOT NULL,
    mask  INTEGER NOT NULL DEFAULT 0,
    hlc   INTEGER NOT NULL,
    vals  TEXT,
    prev  TEXT,
    base  BLOB,
    batch TEXT
);
-- Three partial indexes, so that a local write, which creates or
-- updates an open entry with no batch, touches one index only.
CREATE UNIQUE INDEX _outbox_open ON _outbox (tbl, pk) WHERE vals IS NULL;
CREATE INDEX _outbox_frozen ON _outbox (tbl, pk) WHERE vals IS NOT NULL;
CREATE INDEX _outbox_batch ON _outbox (batch) WHERE batch IS NOT NULL;

-- The pending writes of the per-cell outbox become frozen entries, one
-- per row, clock reading and batch, so that every write keeps its exact
-- version and a batch already cut, whose answer may have been lost, is
-- sent again under its id with the same changes (the server answers a
-- batch id it applied from its record). A prev the per-cell layout left
-- to be worked out (-1) is the newest older entry of the cell, else the
-- row's record, copied as base. A replica of the per-cell layout has no
-- record yet (replica.Init converts _cells after the migrations), and no
-- such prev either: its trigger resolved every one.
INSERT OR IGNORE INTO _tables (name) SELECT DISTINCT tbl FROM _outbox_cells;
INSERT OR IGNORE INTO _columns (tbl, bit, name) SELECT id, 0, '_deleted' FROM _tables;
INSERT INTO _outbox (id, tbl, pk, mask, hlc, vals, prev, base, batch)
SELECT MIN(c.id), t.id, c.pk, 0, c.hlc,
    json_group_object(c.col, c.val),
    (SELECT json_group_object(p.col, json_array(p.h, p.n)) FROM (
        SELECT e.col,
            CASE WHEN e.prev_hlc != -1 THEN e.prev_hlc ELSE
                (SELECT o.hlc FROM _outbox_cells o WHERE o.tbl = e.tbl AND o.pk = e.pk AND o.col = e.col AND o.id < e.id ORDER BY o.id DESC LIMIT 1) END AS h,
            CASE WHEN e.prev_hlc != -1 THEN e.prev_node ELSE
                (SELECT o.node FROM _outbox_cells o WHERE o.tbl = e.tbl AND o.pk = e.pk AND o.col = e.col AND o.id < e.id ORDER BY o.id DESC LIMIT 1) END AS n
        FROM _outbox_cells e WHERE e.tbl = c.tbl AND e.pk = c.pk AND e.hlc = c.hlc AND e.batch IS c.batch) p
     WHERE p.h IS NOT NULL),
    (SELECT r.clocks FROM _rows r WHERE r.tbl = t.id AND r.pk = unhex(replace(c.pk, '-', ''))),
    c.batch
FROM _outbox_cells c JOIN _tables t ON t.name = c.tbl
GROUP BY c.tbl, c.pk, c.hlc, c.batch;
DROP TABLE _outbox_cells;

-- +goose Down
-- Frozen entries only: an open entry's columns are known from the
-- triggers' positions, which SQL alone does not have (sync first).
CREATE TABLE _outbox_rows AS SELECT * FROM _outbox;
DROP TABLE _outbox;
CREATE TABLE _outbox (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl       TEXT    NOT NULL,
    pk        TEXT    NOT NULL,
    col       TEXT    NOT NULL,
    val,
    hlc       INTEGER NOT NULL DEFAULT 0,
    node      TEXT    NOT NULL DEFAULT '',
    prev_hlc  INTEGER NOT NULL DEFAULT 0,
    prev_node TEXT    NOT NULL DEFAULT '',
    batch     TEXT
);
INSERT INTO _outbox (tbl, pk, col, val, hlc, node, prev_hlc, prev_node, batch)
SELECT t.name, o.pk, k.key, k.value, o.hlc, (SELECT node FROM _replica WHERE id = 1),
    COALESCE(json_extract(o.prev, '$."' || k.key || '"[0]'), -1), COALESCE(json_extract(o.prev, '$."' || k.key || '"[1]'), ''), o.batch
FROM _outbox_rows o JOIN _tables t ON t.id = o.tbl, json_each(o.vals) k WHERE o.vals IS NOT NULL ORDER BY o.id, k.key;
DROP TABLE _outbox_rows;
CREATE INDEX _outbox_cell ON _outbox (tbl, pk, col);
CREATE INDEX _outbox_batch ON _outbox (batch);
CREATE INDEX _outbox_unresolved ON _outbox (prev_hlc) WHERE prev_hlc = -1;
-- +goose StatementBegin
CREATE TRIGGER _outbox_stamp AFTER INSERT ON _outbox
BEGIN
    UPDATE _outbox SET
        hlc = (SELECT hlc FROM _replica WHERE id = 1),
        node = (SELECT node FROM _replica WHERE id = 1),
        prev_hlc = COALESCE(
            (SELECT o.prev_hlc FROM _outbox o
              WHERE o.tbl = NEW.tbl AND o.pk = NEW.pk AND o.col = NEW.col
                AND o.batch IS NULL AND o.id < NEW.id),
            -1),
        prev_node = COALESCE(
            (SELECT o.prev_node FROM _outbox o
              WHERE o.tbl = NEW.tbl AND o.pk = NEW.pk AND o.col = NEW.col
                AND o.batch IS NULL AND o.id < NEW.id),
            '')
    WHERE id = NEW.id;
    DELETE FROM _outbox
     WHERE tbl = NEW.tbl AND pk = NEW.pk AND col = NEW.col
       AND batch IS NULL AND id < NEW.id;
END;
-- +goose StatementEnd
