-- +goose Up
-- Batches refused by the state of the data (invalid_row, forbidden_scope)
-- or by the time (clock_ahead), with the refusal: a copy of such a batch
-- replayed later by the network gets the same refusal instead of being
-- applied once the rule or the time would let it pass, since its device
-- has already set it aside or stamped its writes again (RELIABILITY.md).
CREATE TABLE _refused_batches (
    device_id  TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    refused_at INTEGER NOT NULL,
    error      TEXT    NOT NULL,
    PRIMARY KEY (device_id, id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE _refused_batches;
