// Package portability holds no code that runs: its test prepares, on a
// real PostgreSQL, every SQL statement written as a constant in the
// server's packages, the way pgstore runs them (SQLite's placeholders
// rewritten by pgstore.Rebind). Statements of the packages already on
// both engines must prepare; the others are listed, so that what is left
// to port is a list and not a guess.
package portability
