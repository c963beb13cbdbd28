package main

import "os"

// stderrIsTerminal says whether stderr is a character device, a terminal
// someone watches, rather than a file or a pipe of a script.
func stderrIsTerminal() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
