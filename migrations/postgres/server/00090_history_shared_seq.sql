-- +goose Up
-- PostgreSQL twin of migrations/server/00090_history_shared_seq.sql.
ALTER TABLE _history ADD COLUMN shared_seq BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE _history DROP COLUMN shared_seq;
