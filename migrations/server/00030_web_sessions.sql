-- +goose Up
-- Browser sessions of the dashboard. The cookie holds a random token; only
-- its SHA-256 is stored, so a copy of the database lets nobody log in. The
-- CSRF token is per session and goes in every form.
CREATE TABLE _web_sessions (
    token_hash   TEXT    PRIMARY KEY NOT NULL,
    user_id      TEXT    NOT NULL REFERENCES _users (id),
    csrf         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX _web_sessions_user ON _web_sessions (user_id);

-- +goose Down
DROP TABLE _web_sessions;
