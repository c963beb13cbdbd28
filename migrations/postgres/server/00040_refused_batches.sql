-- +goose Up
-- PostgreSQL twin of migrations/server/00040_refused_batches.sql.
CREATE TABLE _refused_batches (
    device_id  TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    refused_at BIGINT  NOT NULL,
    error      TEXT    NOT NULL,
    PRIMARY KEY (device_id, id)
);

-- +goose Down
DROP TABLE _refused_batches;
