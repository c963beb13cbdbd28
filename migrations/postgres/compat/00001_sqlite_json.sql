-- +goose Up
-- SQLite's JSON functions as the server's SQL uses them, for PostgreSQL,
-- so that the same statement text runs on both engines. The idiom they
-- serve is passing a list as one parameter: "x IN (SELECT value FROM
-- json_each(?))". The built-in json_each(json) stays as it is: these take
-- text, which a text column or an untyped parameter resolves to.

-- One row per element of an array (key: its index) or member of an object
-- (key: its name), or one row for a scalar (key NULL), as SQLite's
-- json_each: value as text (NULL for null, 1 and 0 for true and false,
-- the JSON text of a nested array or object), type named as SQLite names
-- it (null, true, false, integer, real, text, array, object).
-- +goose StatementBegin
CREATE FUNCTION json_each(doc text) RETURNS TABLE (key text, value text, type text)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH d (j, t) AS (SELECT doc::json, json_typeof(doc::json)),
    e (k, v, o) AS (
        SELECT (a.o - 1)::text, a.v, a.o FROM d,
            json_array_elements(CASE WHEN d.t = 'array' THEN d.j ELSE '[]'::json END) WITH ORDINALITY AS a (v, o)
        UNION ALL
        SELECT m.k, m.v, m.o FROM d,
            json_each(CASE WHEN d.t = 'object' THEN d.j ELSE '{}'::json END) WITH ORDINALITY AS m (k, v, o)
        UNION ALL
        SELECT NULL, d.j, 1 FROM d WHERE d.t NOT IN ('array', 'object')
    )
    SELECT k,
        CASE json_typeof(v)
            WHEN 'string' THEN v #>> '{}'
            WHEN 'null' THEN NULL
            WHEN 'boolean' THEN CASE WHEN v::text = 'true' THEN '1' ELSE '0' END
            ELSE v::text
        END,
        CASE json_typeof(v)
            WHEN 'string' THEN 'text'
            WHEN 'number' THEN CASE WHEN v::text ~ '^-?[0-9]+$' THEN 'integer' ELSE 'real' END
            WHEN 'boolean' THEN v::text
            ELSE json_typeof(v)
        END
    FROM e ORDER BY o
$$;
-- +goose StatementEnd

-- Whether a text is well-formed JSON (SQLite answers 1 or 0; here a
-- boolean, which is how the statements use it: CASE WHEN json_valid(x)).
-- +goose StatementBegin
CREATE FUNCTION json_valid(doc text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
    PERFORM doc::json;
    RETURN true;
EXCEPTION WHEN others THEN
    RETURN false;
END
$$;
-- +goose StatementEnd

-- The type of a JSON text's top-level value, named as SQLite names it.
-- +goose StatementBegin
CREATE FUNCTION json_type(doc text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT type FROM json_each('[' || doc || ']')
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION json_type(text);
DROP FUNCTION json_valid(text);
DROP FUNCTION json_each(text);
