// Package reliability holds the end-to-end evidence that Relais keeps its
// promises outside the happy path: the real `relais` binary
// killed with SIGKILL while devices push and pull, devices killed in the
// middle of a sync, a weak 2G link with cuts and stalls in front of the
// real server, and hostile requests against the real HTTP API. The
// deterministic fault simulation lives in internal/sim, the fuzz targets
// next to the decoders they exercise. RELIABILITY.md at the repository
// root says what each test proves and how to run the long campaigns.
package reliability
