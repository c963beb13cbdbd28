-- +goose Up
-- The owner of the row a cell belongs to, copied onto every cell of rows
-- of owned tables (on the server; devices leave it NULL). A conseiller's
-- pull then reads their own cells and the shared ones through this index
-- instead of every cell written since their cursor, which made each
-- device's pull cost grow with the whole fleet's writes. The index is
-- partial on seq, so devices, which leave seq NULL, keep it empty.
ALTER TABLE _cells ADD COLUMN owner TEXT;
CREATE INDEX _cells_owner_seq ON _cells (owner, seq) WHERE seq IS NOT NULL;

-- +goose Down
DROP INDEX _cells_owner_seq;
ALTER TABLE _cells DROP COLUMN owner;
