package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/relais-numerique/relais/server"
)

// A setting is one knob that a flag sets and, when the flag is absent, a
// RELAIS_* variable: each is declared once here, with its default, and
// README.md's settings table is written from this list (see
// TestREADMESettingsTable). A malformed variable stops the command at
// start instead of being replaced by the default.
type setting struct {
	Flag    string
	Env     string
	Default string
	Help    string // French, for -h and the README
	Where   string // the commands that read it
}

var (
	setData = setting{"data", "RELAIS_DATA", server.DefaultDataDir,
		"répertoire de données du serveur", "serve, admin, demo"}
	setStore = setting{"store", "RELAIS_STORE", "",
		"base PostgreSQL partagée par plusieurs serveurs (postgres://UTILISATEUR@HOTE/BASE) ; sans elle, SQLite dans --data", "serve, admin, restore, demo"}
	setAddr = setting{"addr", "RELAIS_ADDR", server.DefaultAddr,
		"adresse d'écoute HOTE:PORT", "serve"}
	setMaxClockAhead = setting{"max-clock-ahead", "RELAIS_MAX_CLOCK_AHEAD", dur(server.DefaultMaxClockAhead),
		"refuser les modifications datées de plus loin que cela dans le futur de l'horloge du serveur", "serve"}
	setRetention = setting{"retention", "RELAIS_RETENTION", dur(server.DefaultRetention),
		"anonymiser chaque jour les bénéficiaires sans mise à jour depuis cette durée ; 0 arrête la tâche", "serve"}
	setAccessTTL = setting{"access-ttl", "RELAIS_ACCESS_TTL", dur(server.DefaultAccessTTL),
		"durée de vie d'un jeton d'accès", "serve"}
	setRefreshIdle = setting{"refresh-idle", "RELAIS_REFRESH_IDLE", dur(server.DefaultRefreshIdle),
		"un jeton de renouvellement inutilisé aussi longtemps ne sert plus", "serve"}
	setRefreshAbsolute = setting{"refresh-absolute", "RELAIS_REFRESH_ABSOLUTE", dur(server.DefaultRefreshAbsolute),
		"un appareil doit se reconnecter au bout de cette durée après sa connexion", "serve"}
	setMinFreeDisk = setting{"min-free-disk-mb", "RELAIS_MIN_FREE_DISK_MB", "256",
		"/readyz répond 503 quand le disque des données a moins d'espace libre, en Mio ; -1 arrête la vérification", "serve"}
	setMetricsAllow = setting{"metrics-allow", "RELAIS_METRICS_ALLOW", "127.0.0.0/8,::1/128",
		"adresses ou plages CIDR (séparées par des virgules) auxquelles GET /metrics répond", "serve"}
	setMetricsTokenFile = setting{"metrics-token-file", "RELAIS_METRICS_TOKEN_FILE", "",
		"fichier contenant un jeton que GET /metrics exige alors (Authorization: Bearer JETON)", "serve"}
	setTrustedProxy = setting{"trusted-proxy", "RELAIS_TRUSTED_PROXY", "",
		"mandataires inverses (adresses IP ou réseaux, séparés par des virgules) dont l'en-tête X-Forwarded-Proto: https fait poser des cookies Secure", "serve"}
	setTLSCert = setting{"tls-cert", "RELAIS_TLS_CERT", "",
		"certificat TLS (PEM, chaîne comprise) : le serveur ne répond alors qu'en HTTPS ; avec --tls-key", "serve"}
	setTLSKey = setting{"tls-key", "RELAIS_TLS_KEY", "",
		"clé privée du certificat TLS (PEM)", "serve"}
	setDB = setting{"db", "RELAIS_DB", "relais-device.db",
		"fichier de l'appareil (sa réplique)", "device"}
	setServer = setting{"server", "RELAIS_SERVER", "http://" + server.DefaultAddr,
		"adresse du serveur, avec http:// ou https://", "device login"}
)

// settings is the list the README table is written from, in its order.
var settings = []setting{setData, setStore, setAddr, setMaxClockAhead, setRetention, setAccessTTL,
	setRefreshIdle, setRefreshAbsolute, setMinFreeDisk, setMetricsAllow, setMetricsTokenFile, setTrustedProxy, setTLSCert, setTLSKey, setDB, setServer}

// dur writes a default duration as a flag accepts it, without the zero
// units Go adds ("8760h", not "8760h0m0s").
func dur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// flags is a command's flag set: settings bound to their variables, and
// errors in French.
type flags struct {
	fs      *flag.FlagSet
	e       *env
	path    string
	args    string
	summary string
	envErrs []error
}

func newFlags(path string, e *env) *flags {
	f := &flags{fs: flag.NewFlagSet(path, flag.ContinueOnError), e: e, path: path}
	if e.current.path == path {
		f.args, f.summary = e.current.args, e.current.summary
	}
	f.fs.SetOutput(io.Discard)
	return f
}

func (f *flags) String(name, def, help string) *string         { return f.fs.String(name, def, help) }
func (f *flags) Bool(name string, def bool, help string) *bool { return f.fs.Bool(name, def, help) }
func (f *flags) Int(name string, def int, help string) *int    { return f.fs.Int(name, def, help) }
func (f *flags) Uint64(name string, def uint64, help string) *uint64 {
	return f.fs.Uint64(name, def, help)
}
func (f *flags) Duration(name string, def time.Duration, help string) *time.Duration {
	return f.fs.Duration(name, def, help)
}
func (f *flags) Var(v flag.Value, name, help string) { f.fs.Var(v, name, help) }
func (f *flags) NArg() int                           { return f.fs.NArg() }
func (f *flags) Arg(i int) string                    { return f.fs.Arg(i) }
func (f *flags) Args() []string                      { return f.fs.Args() }

// text binds a text setting.
func (f *flags) text(s setting) *string {
	p := f.fs.String(s.Flag, s.Default, s.Help+" (variable "+s.Env+")")
	f.fromEnv(s, "")
	return p
}

// duration binds a duration setting.
func (f *flags) duration(s setting) *time.Duration {
	def, err := time.ParseDuration(s.Default)
	if err != nil {
		panic(fmt.Sprintf("setting %s: default %q is not a duration", s.Flag, s.Default))
	}
	p := f.fs.Duration(s.Flag, def, s.Help+" (variable "+s.Env+")")
	f.fromEnv(s, " : écrivez une durée comme 90s, 15m, 2h ou 8760h")
	return p
}

// int64 binds an integer setting.
func (f *flags) int64(s setting) *int64 {
	def, err := strconv.ParseInt(s.Default, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("setting %s: default %q is not an integer", s.Flag, s.Default))
	}
	p := f.fs.Int64(s.Flag, def, s.Help+" (variable "+s.Env+")")
	f.fromEnv(s, " : écrivez un nombre entier")
	return p
}

// fromEnv applies the setting's variable, if set, through the flag's own
// parser, so a malformed value is refused the way a malformed flag is.
func (f *flags) fromEnv(s setting, hint string) {
	v := f.e.getenv(s.Env)
	if v == "" {
		return
	}
	if err := f.fs.Set(s.Flag, v); err != nil {
		f.envErrs = append(f.envErrs, fmt.Errorf("la variable %s vaut « %s », ce n'est pas une valeur valable%s", s.Env, v, hint))
	}
}

// parse reads the arguments. -h prints the command's help on stdout and
// returns flag.ErrHelp, which run turns into exit code 0.
func (f *flags) parse(args []string) error {
	err := f.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		f.printHelp(f.e.stdout)
		return flag.ErrHelp
	}
	if err != nil {
		return usageError{frenchFlagError(err)}
	}
	if len(f.envErrs) > 0 {
		return usageError{errors.Join(f.envErrs...).Error()}
	}
	return nil
}

func (f *flags) printHelp(w io.Writer) {
	line := "relais " + f.path
	hasFlags := false
	f.fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		line += " [options]"
	}
	if f.args != "" {
		line += " " + f.args
	}
	fmt.Fprintf(w, "usage : %s\n", line)
	if f.summary != "" {
		fmt.Fprintf(w, "\n%s.\n", strings.ToUpper(f.summary[:1])+f.summary[1:])
	}
	if hasFlags {
		fmt.Fprintln(w, "\nOptions :")
		f.fs.VisitAll(func(fl *flag.Flag) { printOption(w, fl) })
	}
}

// frenchFlagError rewords the flag package's English errors.
func frenchFlagError(err error) string {
	s := err.Error()
	for _, r := range []struct{ en, fr string }{
		{"flag provided but not defined: ", "option inconnue : "},
		{"flag needs an argument: ", "il manque la valeur de l'option "},
		{"bad flag syntax: ", "option mal écrite : "},
	} {
		if rest, ok := strings.CutPrefix(s, r.en); ok {
			return r.fr + rest
		}
	}
	if strings.HasPrefix(s, "invalid value ") || strings.HasPrefix(s, "invalid boolean value ") {
		// invalid value "x" for flag -name: parse error
		v, rest, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(s, "invalid boolean value "), "invalid value "), " for flag ")
		name, _, _ := strings.Cut(rest, ":")
		return fmt.Sprintf("valeur %s refusée pour l'option %s", v, name)
	}
	return s
}

// printOption writes one option's help in French, as flag.PrintDefaults
// does in English.
func printOption(w io.Writer, fl *flag.Flag) {
	kind, help := flag.UnquoteUsage(fl)
	names := map[string]string{"string": "TEXTE", "duration": "DURÉE", "int": "N", "int64": "N", "uint": "N", "value": "VALEUR"}
	line := "  --" + fl.Name
	if kind != "" {
		if fr, ok := names[kind]; ok {
			kind = fr
		}
		line += " " + kind
	}
	fmt.Fprintf(w, "%s\n    \t%s", line, help)
	if d := fl.DefValue; d != "" && d != "false" && d != "0" && d != "0s" {
		if _, isDur := fl.Value.(interface{ Get() any }); isDur && kind == "DURÉE" {
			if v, err := time.ParseDuration(d); err == nil {
				d = dur(v)
			}
		}
		fmt.Fprintf(w, " (par défaut : %s)", d)
	}
	fmt.Fprintln(w)
}
