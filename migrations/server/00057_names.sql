-- +goose Up
-- The name a person gives a device when logging it in ("Tablette",
-- "Téléphone de Camille"), and a person's name: the fleet page, the
-- conflicts, the statistics and `relais admin device list` show names
-- rather than bare ids and e-mail addresses.
ALTER TABLE _devices ADD COLUMN name TEXT;
ALTER TABLE _users ADD COLUMN name TEXT;

-- +goose Down
ALTER TABLE _users DROP COLUMN name;
ALTER TABLE _devices DROP COLUMN name;
