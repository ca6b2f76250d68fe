package load

import (
	"strings"
	"testing"
	"time"
)

// pgbench15 is the end of a real pgbench 15 simple-update run.
const pgbench15 = `pgbench (15.20 (Debian 15.20-0+deb12u1))
starting vacuum...end.
transaction type: <builtin: simple update>
scaling factor: 10
query mode: simple
number of clients: 64
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 112846
number of failed transactions: 0 (0.000%)
latency average = 11.329 ms
initial connection time = 98.123 ms
tps = 5649.284210 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		got, err := ParsePgbench(pgbench15)
		if err != nil {
			t.Fatal(err)
		}
		want := PgbenchOutput{TPS: 5649.284210, LatencyAvg: 11329 * time.Microsecond, Transactions: 112846}
		if got != want {
			t.Errorf("ParsePgbench = %+v, want %+v", got, want)
		}
	})
	t.Run("OK_Failures", func(t *testing.T) {
		got, err := ParsePgbench(strings.Replace(pgbench15, "failed transactions: 0 (0.000%)", "failed transactions: 12 (0.011%)", 1))
		if err != nil || got.Failed != 12 {
			t.Errorf("ParsePgbench with failures = %+v, %v; want Failed 12", got, err)
		}
	})
	t.Run("ErrNoTPS", func(t *testing.T) {
		// An aborted run prints no tps line; an initial-connection tps
		// alone (old pgbench) is not what the report compares with.
		for _, out := range []string{
			"pgbench: error: connection to server failed\n",
			strings.Replace(pgbench15, "(without initial connection time)", "(including connections establishing)", 1),
		} {
			if got, err := ParsePgbench(out); err == nil {
				t.Errorf("ParsePgbench(%q) = %+v, want an error", out[:40], got)
			}
		}
	})
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tcloud-app\nVmPeak:\t 1234 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n"
	t.Run("OK", func(t *testing.T) {
		got, err := parseVmRSS(status)
		if err != nil || got != 50<<20 {
			t.Errorf("parseVmRSS = %d, %v; want %d", got, err, 50<<20)
		}
	})
	t.Run("ErrMissingOrMalformed", func(t *testing.T) {
		for _, s := range []string{"Name:\tkthreadd\nThreads:\t1\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n"} {
			if got, err := parseVmRSS(s); err == nil {
				t.Errorf("parseVmRSS(%q) = %d, want an error", s, got)
			}
		}
	})
}

func TestParseProcStat(t *testing.T) {
	// A command name with a space and a parenthesis, as the kernel allows.
	line := "4242 (post gres) x) S 4200 4242 4242 0 -1 4194560 500 0 0 0 1500 250 30 7 20 0 1 0 100 226792 9072 18446744073709551615\n"
	t.Run("OK", func(t *testing.T) {
		got, err := parseProcStat(line)
		if err != nil {
			t.Fatal(err)
		}
		want := procStat{ppid: 4200, utime: 1500, stime: 250, cutime: 30, cstime: 7}
		if got != want {
			t.Errorf("parseProcStat = %+v, want %+v", got, want)
		}
	})
	t.Run("ErrMalformed", func(t *testing.T) {
		for _, s := range []string{"4242 no parentheses", "4242 (x) S 1 2 3", "4242 (x) S z 1 1 0 -1 0 0 0 0 0 1 1 1 1 20"} {
			if got, err := parseProcStat(s); err == nil {
				t.Errorf("parseProcStat(%q) = %+v, want an error", s, got)
			}
		}
	})
}

func TestParseCPULine(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		busy, wait, total, err := parseCPULine("cpu  100 5 50 1000 20 3 2 1 0 0")
		if err != nil || busy != 161 || wait != 20 || total != 1181 {
			t.Errorf("parseCPULine = %d, %d, %d, %v; want busy 161, iowait 20, total 1181", busy, wait, total, err)
		}
	})
	t.Run("ErrNotTheAggregate", func(t *testing.T) {
		for _, s := range []string{"cpu0 1 2 3 4 5 6 7 8", "intr 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
			if _, _, _, err := parseCPULine(s); err == nil {
				t.Errorf("parseCPULine(%q) succeeded, want an error", s)
			}
		}
	})
}

func TestUse(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := CPUSnapshot{At: t0, Ticks: map[string]uint64{GroupCloudApp: 100, GroupPostgres: 50}, Busy: 1000, IOWait: 10}
	b := CPUSnapshot{At: t0.Add(2 * time.Second), Ticks: map[string]uint64{GroupCloudApp: 260, GroupPostgres: 130}, Busy: 1380, IOWait: 10}
	u := Use(a, b)
	// cloud-app 160 ticks in 2 s = 0.8 cores; postgres 0.4; machine 1.9;
	// other 1.9 - 1.2 = 0.7.
	near := func(x, y float64) bool { return x-y < 1e-9 && y-x < 1e-9 }
	if !near(u.Cores[GroupCloudApp], 0.8) || !near(u.Cores[GroupPostgres], 0.4) || !near(u.Busy, 1.9) || !near(u.Other, 0.7) || u.IOWait != 0 {
		t.Errorf("Use = %+v, want cloud-app 0.8, postgres 0.4, busy 1.9, other 0.7", u)
	}
	if z := Use(b, b); len(z.Cores) != 0 || z.Busy != 0 {
		t.Errorf("Use over no time = %+v, want nothing", z)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 27
go_memstats_heap_inuse_bytes 1.2345e+07
cloud_app_http_requests_total{method="GET",route="/readyz",status="200"} 3
`
	got := parseMetrics(text, []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "process_open_fds"})
	if got["go_goroutines"] != 27 || got["go_memstats_heap_inuse_bytes"] != 12345000 {
		t.Errorf("parseMetrics = %v, want goroutines 27 and heap 12345000", got)
	}
	if _, ok := got["process_open_fds"]; ok {
		t.Errorf("parseMetrics found an absent metric: %v", got)
	}
}
