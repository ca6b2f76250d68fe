package load

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// profileHz is perf's sampling frequency: low enough that the sampling
// costs little, high enough for a few thousand samples in a 15 s window.
const profileHz = 499

// Profile is where a service's CPU time went during a measured window,
// from perf(1) sampling the process (no change to the service: Go
// binaries keep their symbol table and frame pointers).
type Profile struct {
	// Process is the profiled service's name.
	Process string
	// Samples is the number of samples taken.
	Samples int
	// Self are the symbols with the most samples of their own (flat).
	Self []ProfileEntry
	// Packages is the self time summed by Go package ("kernel" for the
	// kernel's symbols, the shared object for C code).
	Packages []ProfileEntry
	// Inclusive are Space Sync's own functions (spacesync.io/...) with
	// the share of samples they or their callees were in.
	Inclusive []ProfileEntry
	// Err says why there is no profile, when there is none.
	Err string
}

// ProfileEntry is a symbol or a package and its share of the samples, in
// percent.
type ProfileEntry struct {
	Name    string
	Percent float64
}

// profiler samples one process with perf for a while.
type profiler struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	out    string
	name   string
	err    error
}

// startProfile starts perf sampling pid (with call graphs) for d. It
// never fails the run: without perf, the profile says why.
func startProfile(ctx context.Context, dir, name string, pid int, d time.Duration) *profiler {
	p := &profiler{name: name, out: filepath.Join(dir, fmt.Sprintf("perf-%s-%d.data", name, time.Now().UnixNano()))}
	perf, err := exec.LookPath("perf")
	if err != nil {
		p.err = fmt.Errorf("perf is not installed (apt-get install linux-perf)")
		return p
	}
	secs := strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
	p.cmd = exec.CommandContext(ctx, perf, "record", "-q", "-F", strconv.Itoa(profileHz), "-g",
		"-p", strconv.Itoa(pid), "-o", p.out, "--", "sleep", secs)
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		p.err = fmt.Errorf("perf record: %w", err)
		p.cmd = nil
	}
	return p
}

// finish waits for perf and reads its report. The data file is removed.
func (p *profiler) finish(ctx context.Context) *Profile {
	prof := &Profile{Process: p.name}
	defer os.Remove(p.out)
	if p.err == nil && p.cmd != nil {
		if err := p.cmd.Wait(); err != nil {
			p.err = fmt.Errorf("perf record: %v %s", err, strings.TrimSpace(p.stderr.String()))
		}
	}
	if p.err != nil {
		prof.Err = p.err.Error()
		return prof
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	flat, err := exec.CommandContext(ctx, "perf", "report", "-i", p.out, "--stdio", "--no-children",
		"--sort", "dso,symbol", "-g", "none", "--percent-limit", "0").Output()
	if err != nil {
		prof.Err = fmt.Sprintf("perf report: %v", err)
		return prof
	}
	prof.Samples = perfSampleCount(string(flat))
	self := ParsePerfReport(string(flat), false)
	prof.Packages = byPackage(self)
	prof.Self = top(self, 15)
	incl, err := exec.CommandContext(ctx, "perf", "report", "-i", p.out, "--stdio", "--children",
		"--sort", "dso,symbol", "-g", "none", "--percent-limit", "1").Output()
	if err == nil {
		var ours []ProfileEntry
		for _, e := range ParsePerfReport(string(incl), true) {
			if strings.HasPrefix(e.Name, "spacesync.io/") {
				ours = append(ours, e)
			}
		}
		prof.Inclusive = top(ours, 20)
	}
	return prof
}

// perfSampleCount reads "# Samples: 7K of event ..." from perf report's
// header; 0 when absent. perf rounds large counts to K or M.
func perfSampleCount(out string) int {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "# Samples: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		mult := 1.0
		n := f[0]
		switch {
		case strings.HasSuffix(n, "K"):
			mult, n = 1e3, strings.TrimSuffix(n, "K")
		case strings.HasSuffix(n, "M"):
			mult, n = 1e6, strings.TrimSuffix(n, "M")
		}
		v, err := strconv.ParseFloat(n, 64)
		if err != nil {
			return 0
		}
		return int(v * mult)
	}
	return 0
}

// ParsePerfReport reads the lines of `perf report --stdio --sort
// dso,symbol -g none`:
//
//	12.34%  cloud-app          [.] runtime.mallocgc
//	 3.10%  [kernel.kallsyms]  [k] tcp_sendmsg
//
// With children (--children), each line has two percentages, inclusive
// then self; the inclusive one is kept. Kernel symbols are named
// "[k] symbol"; symbols of other shared objects "dso: symbol" unless the
// dso is the profiled binary.
func ParsePerfReport(out string, children bool) []ProfileEntry {
	var entries []ProfileEntry
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		need := 4
		if children {
			need = 5
		}
		if len(f) < need || !strings.HasSuffix(f[0], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		rest := f[1:]
		if children {
			rest = f[2:]
		}
		dso, kind := rest[0], rest[1]
		// perf pads the symbol column with "- -" (the empty srcline and
		// parent of a call-graph recording).
		sym := strings.TrimSpace(strings.TrimSuffix(strings.Join(rest[2:], " "), " - -"))
		switch {
		case kind == "[k]" || strings.HasPrefix(dso, "[kernel"):
			sym = "[k] " + sym
		case strings.Contains(dso, ".so"):
			sym = dso + ": " + sym
		}
		entries = append(entries, ProfileEntry{Name: sym, Percent: pct})
	}
	return entries
}

// goPackage is the package of a Go symbol such as
// "github.com/jackc/pgx/v5/pgproto3.(*Frontend).Receive" (the import path
// up to the first dot after the last slash); "kernel" for "[k] ..."
// symbols and the shared object's name for "libc.so.6: ..." ones.
func goPackage(sym string) string {
	if strings.HasPrefix(sym, "[k] ") {
		return "kernel"
	}
	if dso, _, ok := strings.Cut(sym, ": "); ok && strings.Contains(dso, ".so") {
		return dso
	}
	start := strings.LastIndexByte(sym, '/') + 1
	if i := strings.IndexByte(sym[start:], '.'); i >= 0 {
		return sym[:start+i]
	}
	return sym
}

// byPackage sums flat entries by package, largest first.
func byPackage(self []ProfileEntry) []ProfileEntry {
	sums := map[string]float64{}
	for _, e := range self {
		sums[goPackage(e.Name)] += e.Percent
	}
	out := make([]ProfileEntry, 0, len(sums))
	for k, v := range sums {
		out = append(out, ProfileEntry{Name: k, Percent: v})
	}
	return top(out, 15)
}

// top sorts entries by share, largest first, and keeps the first n.
func top(entries []ProfileEntry, n int) []ProfileEntry {
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Percent > entries[j].Percent })
	if len(entries) > n {
		entries = entries[:n]
	}
	return entries
}
