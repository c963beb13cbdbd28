-- +goose Up
-- More of SQLite's scalar functions, as the merge's statements use them:
-- unhex() turns a UUID's text into its 16 bytes (the row-version layout
-- keys rows by them), and the two-argument MAX and MIN keep a clock from
-- going back ("SET hlc = MAX(hlc, ?)"). PostgreSQL's MAX and MIN are
-- aggregates of one argument; these take two, so the names do not clash.

-- The bytes a hexadecimal text spells, or NULL when it spells none (as
-- SQLite answers).
-- +goose StatementBegin
CREATE FUNCTION unhex(h text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN h ~ '^([0-9a-fA-F]{2})*$' THEN decode(h, 'hex') END
$$;
-- +goose StatementEnd

-- SQLite's MAX(a, b) and MIN(a, b) are NULL when either is: GREATEST and
-- LEAST would skip the NULL instead.
-- +goose StatementBegin
CREATE FUNCTION max(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT GREATEST(a, b) $$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION min(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT LEAST(a, b) $$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION min(bigint, bigint);
DROP FUNCTION max(bigint, bigint);
DROP FUNCTION unhex(text);
