-- +goose Up
CREATE TABLE _users (
    id            TEXT    PRIMARY KEY NOT NULL,
    email         TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    role          TEXT    NOT NULL CHECK (role IN ('conseiller', 'coordinateur', 'admin')),
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);

-- A device is enrolled by its user's login. Its id is chosen by the device
-- (so it can write offline before it ever reaches the server) and is the
-- node id in the versions of every change it writes.
CREATE TABLE _devices (
    id              TEXT    PRIMARY KEY NOT NULL,
    user_id         TEXT    NOT NULL REFERENCES _users (id),
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER,
    last_sync_at    INTEGER,
    pending         INTEGER,
    app_version     TEXT,
    schema_version  INTEGER,
    clock_offset_ms INTEGER,
    revoked_at      INTEGER,
    revoked_by      TEXT
);
CREATE INDEX _devices_user ON _devices (user_id);

-- Batches already applied, so that a batch re-sent after a lost answer is
-- acknowledged again without being applied twice.
CREATE TABLE _batches (
    device_id   TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    response    TEXT    NOT NULL,
    PRIMARY KEY (device_id, id)
) WITHOUT ROWID;

-- Ed25519 keys that sign access tokens. The newest unretired key signs;
-- older keys keep verifying until the tokens they signed have expired.
CREATE TABLE _signing_keys (
    kid         TEXT    PRIMARY KEY NOT NULL,
    private_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);

-- +goose Down
DROP TABLE _signing_keys;
DROP TABLE _batches;
DROP TABLE _devices;
DROP TABLE _users;
