-- +goose Up
-- PostgreSQL twin of migrations/server/00001_accounts.sql: same tables,
-- same columns, same meaning (see there). Times are Unix milliseconds in
-- BIGINT, as on SQLite, so the code reads both the same way.

-- SQLite's NOCASE for e-mail addresses: equal whatever the case, so
-- "Camille@…" logs in as "camille@…" and cannot be added twice.
CREATE COLLATION IF NOT EXISTS relais_nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

CREATE TABLE _users (
    id            TEXT    PRIMARY KEY NOT NULL,
    email         TEXT    NOT NULL UNIQUE COLLATE relais_nocase,
    role          TEXT    NOT NULL CHECK (role IN ('conseiller', 'coordinateur', 'admin')),
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    disabled_at   BIGINT
);

CREATE TABLE _devices (
    id              TEXT    PRIMARY KEY NOT NULL,
    user_id         TEXT    NOT NULL REFERENCES _users (id),
    created_at      BIGINT  NOT NULL,
    last_seen_at    BIGINT,
    last_sync_at    BIGINT,
    pending         BIGINT,
    app_version     TEXT,
    schema_version  BIGINT,
    clock_offset_ms BIGINT,
    revoked_at      BIGINT,
    revoked_by      TEXT
);
CREATE INDEX _devices_user ON _devices (user_id);

CREATE TABLE _batches (
    device_id   TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    response    TEXT    NOT NULL,
    PRIMARY KEY (device_id, id)
);

CREATE TABLE _signing_keys (
    kid         TEXT    PRIMARY KEY NOT NULL,
    private_key BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL,
    retired_at  BIGINT
);

-- +goose Down
DROP TABLE _signing_keys;
DROP TABLE _batches;
DROP TABLE _devices;
DROP TABLE _users;
