// Package portability holds no code that runs: its test prepares, on a
// real PostgreSQL, every SQL statement written as a constant in the
// server's packages, the way pgstore runs them (SQLite's placeholders
// rewritten by pgstore.Rebind). Statements of the packages already on
// both engines must prepare; the others are listed, so that what is left
// to port is a list and not a guess.
//
// What the audit taught, for whoever writes a statement for both engines:
// lists travel as one JSON array parameter read with json_each (the
// migrations' compat set gives PostgreSQL SQLite's json_each, json_valid,
// json_type, unhex and two-argument MAX and MIN); upserts are INSERT … ON CONFLICT, never INSERT OR
// IGNORE / OR REPLACE; a parameter used only in "? IS NULL" needs
// CAST(? AS TEXT), or PostgreSQL cannot tell its type; CASE branches
// may not mix booleans and integers; temporary tables are named without
// SQLite's "temp." (both engines look there first), or better avoided: a
// set gathered over several statements is kept in Go (scope.Reannounce).
package portability
