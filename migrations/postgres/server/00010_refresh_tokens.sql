-- +goose Up
-- PostgreSQL twin of migrations/server/00010_refresh_tokens.sql.
CREATE TABLE _refresh_families (
    id             TEXT    PRIMARY KEY NOT NULL,
    device_id      TEXT    NOT NULL,
    user_id        TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX _refresh_families_device ON _refresh_families (device_id);

CREATE TABLE _refresh_tokens (
    hash        BYTEA   PRIMARY KEY NOT NULL,
    family      TEXT    NOT NULL,
    issued_at   BIGINT  NOT NULL,
    used_at     BIGINT,
    replaced_by BYTEA,
    retried     INTEGER NOT NULL DEFAULT 0,
    revoked_at  BIGINT
);
CREATE INDEX _refresh_tokens_family ON _refresh_tokens (family);

-- +goose Down
DROP TABLE _refresh_tokens;
DROP TABLE _refresh_families;
