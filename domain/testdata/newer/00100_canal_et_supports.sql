-- +goose Up
-- A migration from a "newer" release, for the schema-evolution test: a
-- column on an existing table, and a new table.
ALTER TABLE activite ADD COLUMN canal TEXT;
CREATE TABLE support_atelier (
    id           TEXT PRIMARY KEY NOT NULL,
    mediateur_id TEXT,
    activite_id  TEXT,
    titre        TEXT
);

-- +goose Down
DROP TABLE support_atelier;
ALTER TABLE activite DROP COLUMN canal;
