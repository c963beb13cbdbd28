-- +goose Up
-- PostgreSQL twin of migrations/domain/00002_team.sql: the same tables and columns,
-- in PostgreSQL's types (SQLite's INTEGER as BIGINT, REAL as DOUBLE PRECISION).
-- Who works where and who coordinates whom. These rows decide who sees
-- what (server/scope reads them on every exchange), and they are synced
-- like any other table so a device can show its user their structures and
-- team. Columns are nullable and carry no foreign keys, as every synced
-- table (see migrations.go). Dates are ISO 8601 days ('2026-01-31'); an
-- empty debut means "since always", an empty fin "still running".

-- A coordinator follows a médiateur (a conseiller) for a period: the
-- coordinator sees the médiateur's activities dated inside it.
CREATE TABLE coordination (
    id              TEXT PRIMARY KEY NOT NULL,
    coordinateur_id TEXT,
    mediateur_id    TEXT,
    debut           TEXT,
    fin             TEXT
);
CREATE INDEX coordination_coordinateur ON coordination (coordinateur_id);
CREATE INDEX coordination_mediateur ON coordination (mediateur_id);

-- A médiateur works in a structure for a period: the structures where a
-- médiateur works are the reference data their devices receive.
CREATE TABLE mediateur_en_activite (
    id           TEXT PRIMARY KEY NOT NULL,
    mediateur_id TEXT,
    structure_id TEXT,
    debut        TEXT,
    fin          TEXT
);
CREATE INDEX mediateur_en_activite_mediateur ON mediateur_en_activite (mediateur_id);
CREATE INDEX mediateur_en_activite_structure ON mediateur_en_activite (structure_id);

-- +goose Down
DROP TABLE mediateur_en_activite;
DROP TABLE coordination;
