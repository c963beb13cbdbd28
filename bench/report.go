package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is the cost of one measured phase.
type Row struct {
	Name       string        `json:"name"`
	Activities int           `json:"activities,omitempty"`
	Wall       time.Duration `json:"wall_ns"`
	// PerSecond is activities per second of wall time.
	PerSecond float64 `json:"activities_per_s,omitempty"`
	// Bytes crossing TCP between devices and server, HTTP headers
	// included, bodies compressed as sent.
	BytesUp          int64   `json:"bytes_up"`
	BytesDown        int64   `json:"bytes_down"`
	BytesPerActivity float64 `json:"bytes_per_activity,omitempty"`
	Exchanges        int     `json:"exchanges,omitempty"`
	// Exchange latency, from sending the request to reading the whole
	// answer, as the device sees it.
	P50 time.Duration `json:"p50_ns,omitempty"`
	P99 time.Duration `json:"p99_ns,omitempty"`
	Max time.Duration `json:"max_ns,omitempty"`
	// CPU time used during the phase, by the server process and by this
	// process (the devices).
	ServerCPU time.Duration `json:"server_cpu_ns"`
	DeviceCPU time.Duration `json:"device_cpu_ns"`
	// Peak resident memory during the phase (VmHWM after a reset).
	ServerPeakRSS int64 `json:"server_peak_rss"`
	DevicePeakRSS int64 `json:"device_peak_rss"`
	// Store is "postgres" when the servers ran on PostgreSQL (SQLite
	// otherwise), Servers how many shared it, and DatabaseCPU the
	// PostgreSQL processes' CPU time during the phase. With several
	// servers, ServerCPU is their sum and ServerPeakRSS the largest.
	Store       string        `json:"store,omitempty"`
	Servers     int           `json:"servers,omitempty"`
	DatabaseCPU time.Duration `json:"db_cpu_ns,omitempty"`
	Errors      int           `json:"errors,omitempty"`
	// Extra holds figures particular to a scenario (a ratio, a count).
	Extra map[string]float64 `json:"extra,omitempty"`
}

// Result is what a scenario measured.
type Result struct {
	Scenario string   `json:"scenario"`
	Title    string   `json:"title"`
	Rows     []Row    `json:"rows"`
	Notes    []string `json:"notes,omitempty"`
}

// Machine describes where figures were obtained.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
	At        string `json:"at"`
	// LoadAvg is /proc/loadavg when the run started: other work on the
	// machine shows in wall times (CPU times are the process's own).
	LoadAvg string `json:"loadavg"`
}

// ThisMachine reads the machine's description.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		At: time.Now().UTC().Format(time.RFC3339)}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(data))[:3], " ")
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// Print writes the machine and results as tables.
func Print(w io.Writer, m Machine, results []*Result) {
	PrintMachine(w, m)
	for _, r := range results {
		PrintResult(w, r)
	}
}

// PrintMachine writes where the figures come from.
func PrintMachine(w io.Writer, m Machine) {
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s, %s, load average at start %s\n", m.CPUs, m.CPUModel, m.GoVersion, m.At, m.LoadAvg)
}

// PrintResult writes one scenario's figures as a table.
func PrintResult(w io.Writer, r *Result) {
	fmt.Fprintf(w, "\n== %s: %s\n", r.Scenario, r.Title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tactivities\twall\tact/s\tup\tdown\tB/act\texch\tp50\tp99\tsrv cpu\tdev cpu\tsrv peak\tdev peak\terrors\t")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%.1f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n",
			row.Name, row.Activities, dur(row.Wall), row.PerSecond, size(row.BytesUp), size(row.BytesDown),
			row.BytesPerActivity, row.Exchanges, dur(row.P50), dur(row.P99), dur(row.ServerCPU), dur(row.DeviceCPU),
			size(row.ServerPeakRSS), size(row.DevicePeakRSS), row.Errors)
	}
	tw.Flush()
	for _, row := range r.Rows {
		if len(row.Extra) == 0 {
			continue
		}
		var parts []string
		for _, k := range sortedKeys(row.Extra) {
			parts = append(parts, fmt.Sprintf("%s=%.4g", k, row.Extra[k]))
		}
		fmt.Fprintf(w, "  %s: %s\n", row.Name, strings.Join(parts, " "))
	}
	for _, row := range r.Rows {
		if row.Store != "" {
			fmt.Fprintf(w, "  %s: %d server(s) on PostgreSQL; PostgreSQL's CPU %s (\"-\": its cluster is not on this machine; srv cpu is the servers' sum, srv peak the largest)\n",
				row.Name, row.Servers, dur(row.DatabaseCPU))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

// WriteJSON writes results with the machine's description.
func WriteJSON(path string, m Machine, results []*Result) error {
	data, err := json.MarshalIndent(struct {
		Machine Machine   `json:"machine"`
		Results []*Result `json:"results"`
	}{m, results}, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func size(n int64) string {
	switch {
	case n < 10<<10:
		return fmt.Sprintf("%dB", n)
	case n < 10<<20:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
