-- +goose Up
-- The server history this device last synced with (see the server's
-- _history): when an answer carries another one, the server was restored
-- from a backup.
ALTER TABLE _device ADD COLUMN history TEXT;

-- +goose Down
ALTER TABLE _device DROP COLUMN history;
