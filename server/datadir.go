package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockPath is the file a serving process holds locked inside its data
// directory.
func LockPath(dataDir string) string { return filepath.Join(dataDir, "relais.lock") }

// ErrDataDirBusy is returned by LockDataDir when another process holds
// the data directory.
var ErrDataDirBusy = errors.New("data directory in use by another relais server")

// DataDirLock is an exclusive hold on a data directory: one server per
// directory. Two servers on one database would each number cells from
// their own in-memory state and stamp writes with the same node id.
type DataDirLock struct{ f *os.File }

// LockDataDir takes the data directory's lock without waiting, creating
// the directory if needed. The lock is an flock(2) on relais.lock, so
// the kernel releases it when the process dies, however it dies: a crash
// leaves no stale lock behind. The file holds the holder's process id,
// for the message a second server prints.
func LockDataDir(dataDir string) (*DataDirLock, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := LockPath(dataDir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if busy, err := tryLock(f); err != nil || busy {
		defer f.Close()
		if busy {
			holder := ""
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					holder = fmt.Sprintf(" (pid %d)", pid)
				}
			}
			abs, _ := filepath.Abs(dataDir)
			if abs == "" {
				abs = dataDir
			}
			return nil, fmt.Errorf("%w%s: %s — un autre serveur Relais utilise déjà ce dossier de données ; arrêtez-le d'abord", ErrDataDirBusy, holder, abs)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0) // only informative
	}
	return &DataDirLock{f: f}, nil
}

// Release lets another process take the data directory.
func (l *DataDirLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := unlock(l.f)
	cerr := l.f.Close()
	l.f = nil
	return errors.Join(err, cerr)
}
