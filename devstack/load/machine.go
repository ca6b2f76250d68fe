package load

import (
	"bufio"
	"debug/buildinfo"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where the numbers were taken.
type Machine struct {
	NumCPU   int
	CPUModel string
	// MemTotal is in bytes.
	MemTotal int64
	Kernel   string
	// GoLoadgen is the Go version of this program; GoBinaries that of
	// each service binary, read from its build information.
	GoLoadgen  string
	GoBinaries map[string]string
}

// DescribeMachine reads the machine's description from /proc and the
// binaries' build information.
func DescribeMachine(binaries map[string]string) Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GoLoadgen: runtime.Version(), GoBinaries: map[string]string{}}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) == 2 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemTotal = kb * 1024
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	for name, path := range binaries {
		if bi, err := buildinfo.ReadFile(path); err == nil {
			m.GoBinaries[name] = bi.GoVersion
		} else {
			m.GoBinaries[name] = "(unreadable: " + err.Error() + ")"
		}
	}
	return m
}

// LoadAvg is the first three fields of /proc/loadavg (1, 5 and 15 minute
// load averages).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
