//go:build !unix

package server

import "os"

// tryLock has no flock to call here: the server is run on Linux (see
// deploy/), and elsewhere one server per directory is not enforced.
func tryLock(*os.File) (busy bool, err error) { return false, nil }

func unlock(*os.File) error { return nil }

// freeBytes is not measured here; readiness then skips the disk check.
func freeBytes(string) (int64, error) { return -1, nil }
