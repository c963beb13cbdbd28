package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relais-numerique/relais/server"
)

// ChildEnv marks a process started by the harness to run the server. The
// relais binary and the package's test binary both look for it, so the
// harness can re-execute whichever binary it is running in.
const ChildEnv = "RELAIS_BENCH_CHILD"

// listenPrefix starts the one line the child prints once it accepts
// connections, with its URL.
const listenPrefix = "relais-bench listening "

// ServeChild runs the server as the harness's child process: it listens on
// a free loopback port, prints the URL on stdout, and serves until SIGTERM.
// With --cpuprofile and --memprofile it writes pprof profiles of the
// server alone when it stops.
func ServeChild(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench _server", flag.ContinueOnError)
	data := fs.String("data", "", "data directory")
	storeURL := fs.String("store", "", "PostgreSQL database (postgres://…) instead of SQLite in the data directory")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here")
	memProfile := fs.String("memprofile", "", "write an allocation profile here")
	logFile := fs.String("log", "", "server log file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logw := io.Discard
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			return fmt.Errorf("server log: %w", err)
		}
		defer f.Close()
		logw = f
	}
	log := slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(ctx, server.Config{DataDir: *data, Store: *storeURL, Logger: log})
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.App().Listener(ln) }()
	fmt.Fprintf(stdout, "%shttp://%s\n", listenPrefix, ln.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	if err := srv.App().ShutdownWithTimeout(10 * time.Second); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return fmt.Errorf("allocation profile: %w", err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return fmt.Errorf("allocation profile: %w", err)
		}
	}
	return nil
}

// serverProc is a server child process.
type serverProc struct {
	URL  string
	cmd  *exec.Cmd
	done chan error
}

// startServer starts a server on dataDir (or on the PostgreSQL database
// storeURL, when set) in a child process and waits until it listens. When
// profileDir is set, the child writes server-<name>.cpu.pprof and
// server-<name>.allocs.pprof there on stop.
func startServer(ctx context.Context, dataDir, storeURL, profileDir, name string) (*serverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	args := []string{"bench", "_server", "--data", dataDir, "--log", filepath.Join(dataDir, "server.log")}
	if storeURL != "" {
		args = append(args, "--store", storeURL)
	}
	if profileDir != "" {
		args = append(args,
			"--cpuprofile", filepath.Join(profileDir, "server-"+name+".cpu.pprof"),
			"--memprofile", filepath.Join(profileDir, "server-"+name+".allocs.pprof"))
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), ChildEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	p := &serverProc{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), listenPrefix); ok {
				lines <- u
			}
		}
		close(lines)
		p.done <- cmd.Wait()
	}()
	select {
	case u, ok := <-lines:
		if !ok {
			return nil, fmt.Errorf("start server: child exited before listening: %v", <-p.done)
		}
		p.URL = u
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		return nil, errors.New("start server: child did not listen within 60 s")
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return nil, ctx.Err()
	}
	return p, nil
}

// Stop asks the child to shut down (it then writes its profiles) and
// waits for it.
func (p *serverProc) Stop() error {
	if p == nil || p.cmd.Process == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("server child: %w", err)
		}
		return nil
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		return errors.New("server child did not stop within 60 s; killed")
	}
}

// usage is a reading of a process's CPU time and peak memory.
type usage struct {
	CPU     time.Duration
	PeakRSS int64 // bytes, since the last resetPeak
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times. It is
// 100 on every Linux this runs on; reading it would need cgo's sysconf.
const clockTicks = 100

// readUsage reads pid's CPU time and peak resident memory from /proc
// (pid 0 means this process).
func readUsage(pid int) (usage, error) {
	var u usage
	dir := "/proc/self"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return u, fmt.Errorf("read cpu time: %w", err)
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return u, fmt.Errorf("read cpu time: short %s/stat", dir)
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	u.CPU = time.Duration(ut+st) * time.Second / clockTicks
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return u, fmt.Errorf("read peak memory: %w", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			u.PeakRSS = kb << 10
		}
	}
	return u, nil
}

// resetPeak restarts the peak-memory reading of pid (0: this process), so
// that a phase's peak is its own. The Go runtime keeps freed memory for a
// while, so the reading after a reset is at least the memory retained.
func resetPeak(pid int) {
	dir := "/proc/self"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	_ = os.WriteFile(dir+"/clear_refs", []byte("5"), 0) // best effort: old kernels lack it
}

func (p *serverProc) pid() int { return p.cmd.Process.Pid }

// postgresUsage sums the CPU time of one PostgreSQL cluster on this
// machine, that of the postmaster pid: its backends' own, and its
// children's (the backends that exited, which it reaped). A server on
// PostgreSQL leaves there the work SQLite does inside the server process,
// so the two are compared with it counted. Other work on the same
// cluster counts too: the figures are taken on a cluster of their own.
func postgresUsage(postmaster int) time.Duration {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := procStat(pid)
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != postmaster && ppid != postmaster {
			continue
		}
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// procStat returns the fields of /proc/PID/stat after the command name
// (state first), or nil.
func procStat(pid int) []string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(stat)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return nil
	}
	return strings.Fields(s[end+1:])
}
