-- +goose Up
-- Failed logins, one row per failure and per counter ("account:<e-mail>"
-- and "address:<ip>"), for the login limits shared by the sync API and
-- the dashboard's form, and by every server process on the data
-- directory. Rows older than the window are swept as failures come in.
CREATE TABLE _login_failures (
    key TEXT    NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX _login_failures_key_at ON _login_failures (key, at);

-- +goose Down
DROP TABLE _login_failures;
