// Command relais is the one Relais binary: the server, the admin tools
// that work on its data directory while it runs, and a command-line
// device for trying and testing sync. Its commands (the table in
// commands.go is the one list; TestPackageCommentListsCommands keeps
// this comment in step with it):
//
//	relais serve                          start the server
//	relais demo                           fill a data directory with a département
//	relais bench SCENARIO|all             measure sync against a real server
//	relais backup --to FILE               copy the server database while it runs
//	relais restore --from FILE            put a backup back (server stopped)
//	relais version                        print the version
//	relais admin user add|list|password|disable|enable
//	relais admin device list|revoke
//	relais admin keys rotate
//	relais admin coordination add|list|remove
//	relais admin retention run
//	relais admin beneficiaire erase
//	relais device login|sync|status|sql|erase|rejected
//
// Messages meant for people (conseillères, coordinators, the
// administrator) are French and say what to do; errors sent to programs
// keep the server's English codes. Every flag that has a RELAIS_*
// variable is listed once, in settings.go.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// command is one leaf of the command tree.
type command struct {
	path    string // "admin user add"
	args    string // what follows the flags in the usage line, if anything
	summary string // one French line for `relais help`
	hidden  bool   // internal: not listed in help
	run     func(ctx context.Context, args []string, env *env) error
}

// env is what a command reads and writes besides its arguments, so tests
// can run commands in-process.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// isTerminal says whether stderr is a terminal a person watches, for
	// progress lines; nil means no.
	isTerminal func() bool
	// retryFor, when set, replaces cliRetryFor (tests of an unreachable
	// server need not wait).
	retryFor time.Duration
	// current is the command being run, for its help.
	current command
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, isTerminal: stderrIsTerminal}
	os.Exit(run(ctx, os.Args[1:], e))
}

// Exit codes: 0 success (and help asked for), 1 the command failed,
// 2 the command was called wrongly.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// lookup returns the command with the longest path that starts args.
func lookup(args []string) (command, []string, bool) {
	for n := min(3, len(args)); n >= 1; n-- {
		path := strings.Join(args[:n], " ")
		for _, c := range commands {
			if c.path == path {
				return c, args[n:], true
			}
		}
	}
	return command{}, args, false
}

// run dispatches to the command and turns an error into one sentence on
// stderr with its exit code.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 || isHelp(args[0]) || args[0] == "help" && len(args) == 1 {
		usage(e.stdout)
		return exitOK
	}
	if args[0] == "help" {
		// "relais help device sync" is "relais device sync -h".
		args = append(args[1:], "-h")
	}
	c, rest, ok := lookup(args)
	if !ok {
		fmt.Fprintf(e.stderr, "relais : commande inconnue « %s ». Tapez « relais help » pour la liste des commandes.\n", strings.Join(args, " "))
		return exitUsage
	}
	e.current = c
	err := c.run(ctx, rest, e)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	}
	fmt.Fprintln(e.stderr, "relais "+c.path+" : "+sentence(err))
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "Tapez « relais %s -h » pour l'aide de cette commande.\n", c.path)
		return exitUsage
	}
	return exitFail
}

func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

func usage(w io.Writer) {
	fmt.Fprintln(w, "Relais : synchronisation hors ligne des données de médiation numérique.")
	fmt.Fprintln(w, "\nusage : relais COMMANDE [options]\n\nCommandes :")
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(w, "  %-28s %s\n", c.path, c.summary)
		}
	}
	fmt.Fprintln(w, "\nTapez « relais COMMANDE -h » pour les options d'une commande.")
}

// usageError marks errors in how a command was called.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// sentence makes an error one line that ends with a full stop.
func sentence(err error) string {
	s := strings.TrimSpace(strings.ReplaceAll(err.Error(), "\n", " "))
	if s != "" && !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "»") {
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
		return "", fmt.Errorf("lecture du mot de passe sur l'entrée standard : %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", usagef("aucun mot de passe sur l'entrée standard : tapez par exemple  echo 'mot de passe' | relais …")
	}
	return line, nil
}
