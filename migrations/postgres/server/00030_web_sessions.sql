-- +goose Up
-- PostgreSQL twin of migrations/server/00030_web_sessions.sql.
CREATE TABLE _web_sessions (
    token_hash   TEXT    PRIMARY KEY NOT NULL,
    user_id      TEXT    NOT NULL REFERENCES _users (id),
    csrf         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    last_seen_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);
CREATE INDEX _web_sessions_user ON _web_sessions (user_id);

-- +goose Down
DROP TABLE _web_sessions;
