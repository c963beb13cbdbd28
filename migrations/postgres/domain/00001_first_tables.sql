-- +goose Up
-- PostgreSQL twin of migrations/domain/00001_first_tables.sql: the same tables and columns,
-- in PostgreSQL's types (SQLite's INTEGER as BIGINT, REAL as DOUBLE PRECISION).
-- The first synced tables. Every column but id is nullable on purpose: see
-- the package comment in migrations.go. Rules that tie columns together are
-- checked on write, not by constraints that a partial row would break.
CREATE TABLE structure (
    id          TEXT PRIMARY KEY NOT NULL,
    nom         TEXT,
    adresse     TEXT,
    commune     TEXT,
    code_postal TEXT,
    code_insee  TEXT,
    siret       TEXT,
    latitude    DOUBLE PRECISION,
    longitude   DOUBLE PRECISION,
    itinerance  TEXT
);

CREATE TABLE beneficiaire (
    id                  TEXT PRIMARY KEY NOT NULL,
    mediateur_id        TEXT,
    anonyme             BIGINT,
    prenom              TEXT,
    nom                 TEXT,
    telephone           TEXT,
    email               TEXT,
    annee_naissance     BIGINT,
    adresse             TEXT,
    commune             TEXT,
    commune_code_postal TEXT,
    commune_code_insee  TEXT,
    genre               TEXT,
    tranche_age         TEXT,
    statut_social       TEXT,
    notes               TEXT
);

CREATE TABLE activite (
    id           TEXT PRIMARY KEY NOT NULL,
    mediateur_id TEXT,
    type         TEXT,
    date         TEXT,
    duree        BIGINT,
    type_lieu    TEXT,
    structure_id TEXT,
    commune      TEXT,
    code_insee   TEXT,
    autonomie    TEXT,
    notes        TEXT
);
CREATE INDEX activite_mediateur_date ON activite (mediateur_id, date);
CREATE INDEX beneficiaire_mediateur ON beneficiaire (mediateur_id);

-- +goose Down
DROP TABLE activite;
DROP TABLE beneficiaire;
DROP TABLE structure;
