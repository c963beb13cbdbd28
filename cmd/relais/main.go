// Command relais is the one Relais binary: the server, the admin tools
// that work on its data directory, and a command-line device for trying
// and testing sync.
//
//	relais serve [--data DIR] [--addr HOST:PORT]
//	relais admin user add --data DIR --email E --role ROLE --password-stdin
//	relais device login|sync|status|sql --db FILE ...
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one leaf of the command tree.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, env *env) error
}

// env is what a command reads and writes besides its arguments, so tests
// can run commands in-process.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// commands maps "group sub" paths to commands. Each file of this package
// registers its own group in an init function.
var commands = map[string]command{}

func register(path string, c command) { commands[path] = c }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(run(ctx, os.Args[1:], e))
}

// run dispatches to the longest command path that matches the arguments
// and turns an error into one sentence on stderr and exit code 1 (2 for
// usage errors).
func run(ctx context.Context, args []string, e *env) int {
	for n := min(3, len(args)); n >= 1; n-- {
		path := strings.Join(args[:n], " ")
		if c, ok := commands[path]; ok {
			if err := c.run(ctx, args[n:], e); err != nil {
				fmt.Fprintln(e.stderr, "relais "+path+": "+sentence(err))
				var ue usageError
				if errors.As(err, &ue) {
					return 2
				}
				return 1
			}
			return 0
		}
	}
	usage(e.stderr)
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		return 0
	}
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: relais COMMAND [flags]\n\ncommands:")
	paths := make([]string, 0, len(commands))
	for p := range commands {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(w, "  %-28s %s\n", p, commands[p].summary)
	}
	fmt.Fprintln(w, "\nrun 'relais COMMAND -h' for a command's flags")
}

// usageError marks errors in how a command was called.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// sentence makes an error one line that ends with a full stop.
func sentence(err error) string {
	s := strings.TrimSpace(strings.ReplaceAll(err.Error(), "\n", " "))
	if s != "" && !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// readSecret reads a password from stdin: its first line, without the
// line ending. Passwords never come from flags, which other users of the
// machine can read in the process list.
func readSecret(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", usagef("no password on stdin")
	}
	return line, nil
}

// envOr returns the environment variable's value, or def.
func envOr(e *env, name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}
