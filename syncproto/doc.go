// Package syncproto is the Relais sync protocol: the hybrid logical clock,
// cell versions and their last-writer-wins order, the wire types of one
// exchange, the schema description that changes are checked against, and
// the catalogue of error codes.
//
// It is pure Go with no I/O so that the server, the device SDK and any
// future SDK port share one definition of what a valid change is and which
// of two writes wins.
package syncproto
