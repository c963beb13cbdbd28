// Package bench measures the sync path end to end: a real server running
// as a child process on loopback, real device replicas in this process,
// real exchanges over TCP. Each scenario (ingest, initial sync, growth,
// back from a month away, the fleet at 17:00, a weak link) returns
// rows of figures: wall time, throughput, bytes on the wire both ways,
// the server's CPU time and the peak memory of server and devices.
//
// The server runs in its own process so that its CPU time and memory are
// its own, not mixed with the devices' work: they are read from
// /proc/PID/stat and /proc/PID/status (Linux), and the peak is reset
// between phases through /proc/PID/clear_refs.
//
// Nothing here asserts a speed. The figures are printed (and written as
// JSON) to be read and compared; BENCHMARKS.md says how they were obtained.
package bench
