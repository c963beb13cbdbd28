-- +goose Up
-- PostgreSQL twin of migrations/server/00057_names.sql.
ALTER TABLE _devices ADD COLUMN name TEXT;
ALTER TABLE _users ADD COLUMN name TEXT;

-- +goose Down
ALTER TABLE _users DROP COLUMN name;
ALTER TABLE _devices DROP COLUMN name;
