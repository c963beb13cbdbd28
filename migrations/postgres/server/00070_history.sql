-- +goose Up
-- PostgreSQL twin of migrations/server/00070_history.sql.
CREATE TABLE _history (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    history     TEXT    NOT NULL,
    parent      TEXT,
    restored_at BIGINT
);

-- +goose Down
DROP TABLE _history;
