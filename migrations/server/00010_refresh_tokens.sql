-- +goose Up
-- A family is one login of one device: the chain of refresh tokens that
-- rotate from it. Ending a family (reuse detected, device revoked, new
-- login on the same device) ends every token in it and every access token
-- that names it (claim "sid"). created_at bounds the family's absolute
-- life.
CREATE TABLE _refresh_families (
    id             TEXT    PRIMARY KEY NOT NULL,
    device_id      TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    revoked_reason TEXT
);
CREATE INDEX _refresh_families_device ON _refresh_families (device_id);

-- Refresh tokens, stored only as the SHA-256 of the token: a copy of the
-- database gives no usable token. A token is used once; using it sets
-- used_at and replaced_by (the hash of its successor). retried records
-- that the one retry allowed after a lost answer was spent.
CREATE TABLE _refresh_tokens (
    hash        BLOB    PRIMARY KEY NOT NULL,
    family      TEXT    NOT NULL,
    issued_at   INTEGER NOT NULL,
    used_at     INTEGER,
    replaced_by BLOB,
    retried     INTEGER NOT NULL DEFAULT 0,
    revoked_at  INTEGER
) WITHOUT ROWID;
CREATE INDEX _refresh_tokens_family ON _refresh_tokens (family);

-- +goose Down
DROP TABLE _refresh_tokens;
DROP TABLE _refresh_families;
