package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/relais-numerique/relais/bench"
)

func init() {
	register("bench", command{"run a benchmark scenario against a real server (see BENCHMARKS.md)", runBench})
	// The harness re-executes this binary to run the server in its own
	// process, so its CPU time and memory are measured apart.
	register("bench _server", command{"(internal) the benchmark's server process", func(ctx context.Context, args []string, e *env) error {
		return bench.ServeChild(args, e.stdout)
	}})
}

func runBench(ctx context.Context, args []string, e *env) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	size := fs.Int("size", 0, "the scenario's size: activities, or devices for fleet (0: the scenario's default)")
	sizes := fs.String("sizes", "", "growth: comma-separated sizes (default 10000,50000,200000)")
	conc := fs.Int("concurrency", 0, "fleet: devices syncing at once (default 200)")
	jsonOut := fs.String("json", "", "also write the figures as JSON to this file")
	profile := fs.String("profile", "", "write pprof CPU and allocation profiles of the server, and a CPU profile of the devices, to this directory")
	dir := fs.String("dir", "", "work directory, kept after the run (default: a temporary one, removed)")
	seed := fs.Uint64("seed", 53, "seed of the generated département")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: relais bench SCENARIO|all [flags]\n\nscenarios:")
		for i, s := range bench.Scenarios {
			fmt.Fprintf(e.stderr, "  %d %-8s %s\n", i+1, s.Name, s.Title)
		}
		fmt.Fprintln(e.stderr, "\nflags:")
		fs.PrintDefaults()
	}
	var names []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		names = append(names, args[0])
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	names = append(names, fs.Args()...)
	if len(names) == 0 {
		fs.Usage()
		return usagef("name a scenario, or all")
	}
	if len(names) == 1 && names[0] == "all" {
		names = nil
		for _, s := range bench.Scenarios {
			names = append(names, s.Name)
		}
	}
	cfg := bench.Config{Size: *size, Concurrency: *conc, Seed: *seed, Dir: *dir, Progress: e.stderr}
	for _, s := range strings.Split(*sizes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return usagef("--sizes: %q is not a positive number", s)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	if *profile != "" {
		abs, err := filepath.Abs(*profile)
		if err != nil {
			return fmt.Errorf("profile directory: %w", err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return fmt.Errorf("profile directory: %w", err)
		}
		cfg.ProfileDir = abs
		f, err := os.Create(filepath.Join(abs, "devices.cpu.pprof"))
		if err != nil {
			return fmt.Errorf("device profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("device profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.Dir != "" {
		abs, err := filepath.Abs(cfg.Dir)
		if err != nil {
			return fmt.Errorf("work directory: %w", err)
		}
		cfg.Dir = abs
	}
	machine := bench.ThisMachine()
	bench.PrintMachine(e.stdout, machine)
	var results []*bench.Result
	for _, name := range names {
		fmt.Fprintf(e.stderr, "bench %s\n", name)
		res, err := bench.Run(ctx, name, cfg)
		if err != nil {
			return err
		}
		// Each scenario's figures are printed and saved as soon as it
		// ends, so a long run stopped halfway keeps what it measured.
		bench.PrintResult(e.stdout, res)
		results = append(results, res)
		if *jsonOut != "" {
			if err := bench.WriteJSON(*jsonOut, machine, results); err != nil {
				return err
			}
		}
	}
	return nil
}
