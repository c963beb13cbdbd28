-- +goose Up
-- The identity of the server's history. A restore from a backup gives the
-- server a new one: devices that see it change know the server may have
-- lost writes they made after the backup and cursors past its sequence,
-- so they send their own writes again and pull everything again (the
-- merge drops what they already hold). parent is the history the restored
-- backup was taken from.
CREATE TABLE _history (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    history     TEXT    NOT NULL,
    parent      TEXT,
    restored_at INTEGER
);

-- +goose Down
DROP TABLE _history;
