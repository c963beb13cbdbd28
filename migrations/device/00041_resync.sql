-- +goose Up
-- Set when the server refused a batch for its content: the device has
-- dropped its own versions of the refused cells and pulls everything again
-- from cursor 0, asking the server to include the cells this device wrote
-- (which pulls normally skip), so that it ends with exactly the server's
-- cells. Cleared when that pull has caught up.
ALTER TABLE _device ADD COLUMN resync INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE _device DROP COLUMN resync;
