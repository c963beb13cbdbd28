-- +goose Up
-- Test and diagnostic hook: an offset, in milliseconds, added to the wall
-- clock that the capture triggers read. It stays 0 in normal use. The
-- reliability simulation sets it (through device.Options.ClockSkew) to give
-- a device a wrong clock, within and beyond the server's allowed bound, so
-- the clock rules are exercised on real triggers; a support session can use
-- it to reproduce a field report from a tablet whose date was wrong.
ALTER TABLE _device ADD COLUMN clock_skew_ms INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE _device DROP COLUMN clock_skew_ms;
