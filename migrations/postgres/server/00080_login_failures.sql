-- +goose Up
-- PostgreSQL twin of migrations/server/00080_login_failures.sql: one
-- table for every server on the database, so the limits hold whichever
-- server a login reaches.
CREATE TABLE _login_failures (
    key TEXT    NOT NULL,
    at  BIGINT  NOT NULL
);
CREATE INDEX _login_failures_key_at ON _login_failures (key, at);

-- +goose Down
DROP TABLE _login_failures;
