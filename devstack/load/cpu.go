package load

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// Process groups a CPUMeter accounts for.
const (
	GroupCloudApp = "cloud-app"
	GroupDCApp    = "dc-app"
	GroupPostgres = "postgres"
	GroupLoadgen  = "loadgen"
)

// CPUMeter reads, from /proc, the CPU time of the processes under test
// (cloud-app, dc-app, this cluster's Postgres server and its backends, the
// load generator itself with its reaped children such as pgbench) and of
// the whole machine, so a report can say where the cores went and how much
// of them other work on the machine took.
type CPUMeter struct {
	// PIDs maps GroupCloudApp and GroupDCApp to their process ids; a
	// missing or zero entry is not measured.
	PIDs map[string]int
	// Postmaster is the pid of the Postgres server; its live children are
	// counted with it, and exited ones through its cutime and cstime.
	Postmaster int
}

// CPUSnapshot is the CPU time counters at one instant.
type CPUSnapshot struct {
	At time.Time
	// Ticks are per group, in clock ticks.
	Ticks map[string]uint64
	// Busy, IOWait and Total are the machine's counters from /proc/stat.
	Busy, IOWait, Total uint64
}

// CPUUse is CPU time between two snapshots, in cores (CPU seconds per
// second of wall time).
type CPUUse struct {
	Wall time.Duration
	// Cores maps each group to the cores it used.
	Cores map[string]float64
	// Busy is the cores the whole machine used; Other is Busy minus the
	// groups (other people's work on a shared machine, and the kernel's
	// work not charged to a process); IOWait is idle time spent waiting for
	// disk I/O.
	Busy, Other, IOWait float64
	// NumCPU is the number of cores.
	NumCPU int
}

// Snapshot reads the counters now. Processes that cannot be read count as
// zero.
func (m *CPUMeter) Snapshot() CPUSnapshot {
	s := CPUSnapshot{At: time.Now(), Ticks: map[string]uint64{}}
	for g, pid := range m.PIDs {
		if pid > 0 {
			if st, err := readProcStat(pid); err == nil {
				s.Ticks[g] = st.utime + st.stime
			}
		}
	}
	if st, err := readProcStat(os.Getpid()); err == nil {
		s.Ticks[GroupLoadgen] = st.utime + st.stime + st.cutime + st.cstime
	}
	if m.Postmaster > 0 {
		s.Ticks[GroupPostgres] = m.postgresTicks()
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		s.Busy, s.IOWait, s.Total, _ = parseCPULine(line)
	}
	return s
}

func (m *CPUMeter) postgresTicks() uint64 {
	st, err := readProcStat(m.Postmaster)
	if err != nil {
		return 0
	}
	total := st.utime + st.stime + st.cutime + st.cstime
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		c, err := parseProcStat(string(b))
		if err == nil && c.ppid == m.Postmaster {
			total += c.utime + c.stime
		}
	}
	return total
}

// Since is the CPU use from before to now.
func (m *CPUMeter) Since(before CPUSnapshot) CPUUse {
	return Use(before, m.Snapshot())
}

// Use is the CPU use between two snapshots.
func Use(a, b CPUSnapshot) CPUUse {
	u := CPUUse{Wall: b.At.Sub(a.At), Cores: map[string]float64{}, NumCPU: runtime.NumCPU()}
	secs := u.Wall.Seconds()
	if secs <= 0 {
		return u
	}
	cores := func(t0, t1 uint64) float64 {
		if t1 < t0 {
			return 0
		}
		return float64(t1-t0) / clockTicks / secs
	}
	var groups float64
	for g, t1 := range b.Ticks {
		c := cores(a.Ticks[g], t1)
		u.Cores[g] = c
		groups += c
	}
	u.Busy = cores(a.Busy, b.Busy)
	u.IOWait = cores(a.IOWait, b.IOWait)
	u.Other = max(u.Busy-groups, 0)
	return u
}

// String says the use in one line, e.g. "cloud-app 0.92, postgres 0.71,
// loadgen 0.30, other 0.05 (machine 1.98 of 2 cores busy, iowait 0.00)".
func (u CPUUse) String() string {
	var parts []string
	for _, g := range []string{GroupCloudApp, GroupDCApp, GroupPostgres, GroupLoadgen} {
		if c, ok := u.Cores[g]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", g, c))
		}
	}
	parts = append(parts, fmt.Sprintf("other %.2f", u.Other))
	return fmt.Sprintf("%s (machine %.2f of %d cores busy, iowait %.2f)", strings.Join(parts, ", "), u.Busy, u.NumCPU, u.IOWait)
}

// procStat is the part of /proc/<pid>/stat the meter uses.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime uint64
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

// parseProcStat parses the text of /proc/<pid>/stat (proc(5)). The command
// name, field 2, is in parentheses and may itself contain spaces and
// parentheses, so fields are counted after its last ')'.
func parseProcStat(s string) (procStat, error) {
	var st procStat
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return st, fmt.Errorf("no command name in /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): field k is f[k-3].
	if len(f) < 15 {
		return st, fmt.Errorf("/proc stat has %d fields after the name, want at least 15", len(f))
	}
	var err error
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return st, fmt.Errorf("ppid: %w", err)
	}
	vals := []*uint64{&st.utime, &st.stime, &st.cutime, &st.cstime}
	for k, p := range vals {
		v, err := strconv.ParseInt(f[11+k], 10, 64) // fields 14 to 17
		if err != nil {
			return st, fmt.Errorf("field %d: %w", 14+k, err)
		}
		*p = uint64(max(v, 0))
	}
	return st, nil
}

// parseCPULine parses the aggregate "cpu" line of /proc/stat into busy
// ticks (user, nice, system, irq, softirq, steal), iowait ticks and total
// ticks (busy plus idle and iowait).
func parseCPULine(line string) (busy, iowait, total uint64, err error) {
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, 0, fmt.Errorf("not the aggregate cpu line of /proc/stat")
	}
	v := make([]uint64, 0, 8)
	for _, s := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/stat cpu line: %w", err)
		}
		v = append(v, n)
	}
	for len(v) < 8 {
		v = append(v, 0)
	}
	user, nice, system, idle, wait, irq, softirq, steal := v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
	busy = user + nice + system + irq + softirq + steal
	return busy, wait, busy + idle + wait, nil
}
