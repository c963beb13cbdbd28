-- +goose Up
-- The sequence up to which a restored history is the same as its parent:
-- the last sequence number the backup had given out. A device that last
-- synced with the parent history has received every cell up to it, so
-- after a restore it pulls again from there, not from the start.
ALTER TABLE _history ADD COLUMN shared_seq INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE _history DROP COLUMN shared_seq;
