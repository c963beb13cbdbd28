-- +goose Up
-- Local writes waiting for the server. The capture triggers (generated from
-- the schema when the replica opens) insert (tbl, pk, col, val); the
-- trigger below stamps the entry with the clock, works out prev, folds it
-- into any older entry for the same cell not yet sent, and records the new
-- version in _cells. Entries already given to a batch are never touched: a
-- re-sent batch must be identical to the first sending.
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
CREATE INDEX _outbox_cell ON _outbox (tbl, pk, col);
CREATE INDEX _outbox_batch ON _outbox (batch);

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
            (SELECT c.hlc FROM _cells c
              WHERE c.tbl = NEW.tbl AND c.pk = NEW.pk AND c.col = NEW.col),
            0),
        prev_node = COALESCE(
            (SELECT o.prev_node FROM _outbox o
              WHERE o.tbl = NEW.tbl AND o.pk = NEW.pk AND o.col = NEW.col
                AND o.batch IS NULL AND o.id < NEW.id),
            (SELECT c.node FROM _cells c
              WHERE c.tbl = NEW.tbl AND c.pk = NEW.pk AND c.col = NEW.col),
            '')
    WHERE id = NEW.id;
    DELETE FROM _outbox
     WHERE tbl = NEW.tbl AND pk = NEW.pk AND col = NEW.col
       AND batch IS NULL AND id < NEW.id;
    INSERT INTO _cells (tbl, pk, col, val, hlc, node)
        SELECT NEW.tbl, NEW.pk, NEW.col, NEW.val, r.hlc, r.node FROM _replica r WHERE r.id = 1
        ON CONFLICT (tbl, pk, col) DO UPDATE
           SET val = excluded.val, hlc = excluded.hlc, node = excluded.node;
END;
-- +goose StatementEnd

-- Changes the server refused for their content (a rule, a scope). They are
-- kept, with the server's reason, instead of blocking the outbox forever or
-- being dropped without a trace.
CREATE TABLE _rejected (
    id          INTEGER PRIMARY KEY,
    tbl         TEXT    NOT NULL,
    pk          TEXT    NOT NULL,
    col         TEXT    NOT NULL,
    val,
    hlc         INTEGER NOT NULL,
    node        TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    rejected_at INTEGER NOT NULL
);

-- The device's link to its server and the state of its sync loop.
CREATE TABLE _device (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    server         TEXT,
    email          TEXT,
    user_id        TEXT,
    access_token   TEXT,
    refresh_token  TEXT,
    cursor         INTEGER NOT NULL DEFAULT 0,
    last_sync_at   INTEGER,
    last_error     TEXT,
    revoked_at     INTEGER,
    -- "table.column" names the capture triggers were last installed for,
    -- one per line: columns added since get their kept-aside cells
    -- materialised.
    known_columns  TEXT NOT NULL DEFAULT ''
);
INSERT INTO _device (id) VALUES (1);

-- +goose Down
DROP TABLE _device;
DROP TABLE _rejected;
DROP TRIGGER _outbox_stamp;
DROP TABLE _outbox;
