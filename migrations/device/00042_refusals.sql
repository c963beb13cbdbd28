-- +goose Up
-- The account's role, learnt at login (and at every token refresh) along
-- with its user id: the device's own checks on who may write which row
-- read both (see client-sdk/device/owner.go). NULL before the first login
-- of this version: the checks then let everything through and the server
-- judges.
ALTER TABLE _device ADD COLUMN role TEXT;

-- A refused change keeps, besides the server's code and French reason,
-- the domain rule it broke, if any. Refusals are listed, retried and
-- given up row by row (relais device rejected).
ALTER TABLE _rejected ADD COLUMN rule TEXT NOT NULL DEFAULT '';
CREATE INDEX _rejected_row ON _rejected (tbl, pk);

-- _device.resync (00041) is no longer set: the server now refuses rows,
-- not batches, and sends back its version of each refused cell, so a
-- refusal costs no download. A device upgraded in the middle of such a
-- full pull finishes it.

-- +goose Down
DROP INDEX _rejected_row;
ALTER TABLE _rejected DROP COLUMN rule;
ALTER TABLE _device DROP COLUMN role;
