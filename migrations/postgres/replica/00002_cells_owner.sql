-- +goose Up
-- PostgreSQL twin of migrations/replica/00002_cells_owner.sql, which adds
-- a column to _cells: PostgreSQL never had that table (see 00001), so
-- there is nothing to do; the file keeps the versions in step.
SELECT 1;

-- +goose Down
SELECT 1;
