//go:build !js

package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// dist summarizes a latency sample.
type dist struct {
	N     int     `json:"n"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

func summarize(sample []time.Duration) dist {
	if len(sample) == 0 {
		return dist{}
	}
	s := append([]time.Duration(nil), sample...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		if i < 0 {
			i = 0
		}
		return s[i]
	}
	return dist{N: len(s), P50ms: ms(q(0.50)), P99ms: ms(q(0.99)), MaxMs: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s)))}
}

// row is one line of the table: a figure for AMS, for the floor, and their ratio.
type row struct {
	Section string   `json:"section"`
	Metric  string   `json:"metric"`
	Unit    string   `json:"unit"`
	AMS     *float64 `json:"ams"`
	Floor   *float64 `json:"floor"`
	// Ratio is AMS / floor. For throughput higher is better, for times lower.
	Ratio  *float64 `json:"ratio,omitempty"`
	Target string   `json:"target,omitempty"`
	Note   string   `json:"note,omitempty"`
}

func f(v float64) *float64 { return &v }

func newRow(section, metric, unit string, ams, floor *float64, target, note string) row {
	r := row{Section: section, Metric: metric, Unit: unit, AMS: ams, Floor: floor, Target: target, Note: note}
	if ams != nil && floor != nil && *floor != 0 {
		r.Ratio = f(math.Round(*ams / *floor * 100) / 100)
	}
	return r
}

func fmtNum(v *float64) string {
	if v == nil {
		return "-"
	}
	switch x := *v; {
	case x == 0:
		return "0"
	case math.Abs(x) >= 1000:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.1f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

// met reports whether a ratio meets a target like ">=0.8" or "<=1.5".
func met(r row) string {
	if r.Ratio == nil || r.Target == "" {
		return ""
	}
	var bound float64
	switch {
	case strings.HasPrefix(r.Target, ">="):
		fmt.Sscanf(r.Target[2:], "%g", &bound)
		if *r.Ratio >= bound {
			return "ok"
		}
		return "MISS"
	case strings.HasPrefix(r.Target, "<="):
		fmt.Sscanf(r.Target[2:], "%g", &bound)
		if *r.Ratio <= bound {
			return "ok"
		}
		return "MISS"
	}
	return ""
}

func printTable(w io.Writer, rows []row, markdown bool) {
	if markdown {
		fmt.Fprintln(w, "| section | metric | unit | AMS | floor | AMS/floor | target | |")
		fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---|---|")
		for _, r := range rows {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Section, r.Metric, r.Unit,
				fmtNum(r.AMS), fmtNum(r.Floor), fmtNum(r.Ratio), r.Target, strings.TrimSpace(met(r)+" "+r.Note))
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tMETRIC\tUNIT\tAMS\tFLOOR\tAMS/FLOOR\tTARGET\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Section, r.Metric, r.Unit,
			fmtNum(r.AMS), fmtNum(r.Floor), fmtNum(r.Ratio), r.Target, strings.TrimSpace(met(r)+" "+r.Note))
	}
	tw.Flush()
}

// machine describes where the run happened.
type machine struct {
	NProc    int    `json:"nproc"`
	CPU      string `json:"cpu_model"`
	MemTotal string `json:"mem_total"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Node     string `json:"node"`
	Wrangler string `json:"wrangler"`
	Workerd  string `json:"workerd"`
	NoFile   string `json:"ulimit_nofile"`
}

func describeMachine(root string) machine {
	m := machine{NProc: runtime.NumCPU(), Go: runtime.Version()}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				m.MemTotal = strings.TrimSpace(v)
			}
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	out := func(name string, args ...string) string {
		raw, err := exec.Command(name, args...).Output()
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0])
	}
	m.Node = out("node", "--version")
	m.Wrangler = out(root+"/node_modules/.bin/wrangler", "--version")
	m.Workerd = out(root+"/node_modules/.bin/workerd", "--version")
	m.NoFile = out("sh", "-c", "ulimit -n")
	return m
}
