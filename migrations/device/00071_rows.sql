-- +goose Up
-- With one version record per row (replica migration 00003), a device's
-- record holds the versions it received and its own writes once the
-- server acknowledged them; its pending writes are held in the outbox
-- only (replica.Options.Pending). The stamping trigger therefore no
-- longer records the version anywhere else, and leaves prev to be
-- worked out by the SDK (prev_hlc = -1) when the entry is first needed:
-- reading the packed versions is Go's work, not SQL's.
DROP TRIGGER _outbox_stamp;
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
CREATE INDEX _outbox_unresolved ON _outbox (prev_hlc) WHERE prev_hlc = -1;

-- What an INSERT is compared with, between its BEFORE and AFTER capture
-- triggers: the row an INSERT OR REPLACE replaces (it fires no DELETE
-- trigger, and the row is gone by AFTER INSERT), or the values kept with
-- a deleted row it re-creates (recreate = 1). Empty between statements.
CREATE TABLE _replaced (
    tbl      TEXT NOT NULL,
    pk       TEXT NOT NULL,
    vals     TEXT NOT NULL,
    recreate INTEGER NOT NULL,
    PRIMARY KEY (tbl, pk)
);

-- +goose Down
DROP TABLE _replaced;
DROP INDEX _outbox_unresolved;
