package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/relais-numerique/relais/bench"
	"github.com/relais-numerique/relais/store/pgstore"
)

func runBench(ctx context.Context, args []string, e *env) error {
	fs := newFlags("bench", e)
	size := fs.Int("size", 0, "taille du scénario : activités, ou appareils pour fleet (0 : celle du scénario)")
	sizes := fs.String("sizes", "", "growth : tailles séparées par des virgules (par défaut 10000,50000,200000)")
	conc := fs.Int("concurrency", 0, "fleet : appareils qui synchronisent en même temps (par défaut 200)")
	jsonOut := fs.String("json", "", "écrire aussi les mesures en JSON dans ce fichier")
	profile := fs.String("profile", "", "écrire dans ce répertoire les profils pprof (CPU et allocations) du serveur et le profil CPU des appareils")
	dir := fs.String("dir", "", "répertoire de travail, gardé après la mesure (par défaut : un répertoire temporaire, supprimé)")
	seed := fs.Uint64("seed", 53, "graine du département généré")
	// Not read from RELAIS_STORE: the bench drops and creates databases,
	// which it must do only on a server named for it.
	storeURL := fs.String("store", "", "serveur PostgreSQL (postgres://UTILISATEUR@HOTE/BASE) où chaque scénario crée sa base relais_bench_<scénario> ; sans lui, SQLite")
	servers := fs.Int("servers", 1, "nombre de serveurs partageant la base PostgreSQL de --store, servis à tour de rôle")
	scenarios := func() {
		fmt.Fprintln(e.stdout, "\nScénarios :")
		for i, s := range bench.Scenarios {
			fmt.Fprintf(e.stdout, "  %d %-8s %s\n", i+1, s.Name, s.Title)
		}
	}
	var names []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		names = append(names, args[0])
		args = args[1:]
	}
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			scenarios()
		}
		return err
	}
	names = append(names, fs.Args()...)
	if len(names) == 0 {
		return usagef("nommez un scénario, ou all (relais bench -h les liste)")
	}
	if len(names) == 1 && names[0] == "all" {
		names = nil
		for _, s := range bench.Scenarios {
			names = append(names, s.Name)
		}
	}
	// Steps show on one progress line on a terminal; scripts get only
	// the figures, on stdout.
	line := newProgress(e)
	defer line.done()
	if *storeURL != "" && !pgstore.IsPostgresURL(*storeURL) {
		return usagef("--store (ou RELAIS_STORE) : une adresse postgres://UTILISATEUR@HOTE/BASE est attendue, pas « %s »", *storeURL)
	}
	if *servers < 1 || (*servers > 1 && *storeURL == "") {
		return usagef("--servers : plusieurs serveurs partagent une base PostgreSQL, donnez-la avec --store")
	}
	cfg := bench.Config{Size: *size, Concurrency: *conc, Seed: *seed, Dir: *dir, Progress: line.writer(), Store: *storeURL, Servers: *servers}
	for _, s := range strings.Split(*sizes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return usagef("--sizes : « %s » n'est pas un nombre positif", s)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	if *profile != "" {
		abs, err := filepath.Abs(*profile)
		if err != nil {
			return fmt.Errorf("répertoire des profils : %w", err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return fmt.Errorf("répertoire des profils : %w", err)
		}
		cfg.ProfileDir = abs
		f, err := os.Create(filepath.Join(abs, "devices.cpu.pprof"))
		if err != nil {
			return fmt.Errorf("profil des appareils : %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("profil des appareils : %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.Dir != "" {
		abs, err := filepath.Abs(cfg.Dir)
		if err != nil {
			return fmt.Errorf("répertoire de travail : %w", err)
		}
		cfg.Dir = abs
	}
	machine := bench.ThisMachine()
	bench.PrintMachine(e.stdout, machine)
	var results []*bench.Result
	for _, name := range names {
		line.show(true, "bench %s", name)
		res, err := bench.Run(ctx, name, cfg)
		line.done()
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
