package load

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Pgbench is how pgbench is run for scale.
type Pgbench struct {
	// Scale is the -s of the initialisation (10 = 1,000,000 accounts).
	Scale int
	// Clients and Threads are -c and -j; Duration is -T.
	Clients, Threads int
	Duration         time.Duration
}

// PgbenchResult is what a pgbench run reported.
type PgbenchResult struct {
	PgbenchOutput
	// Commands are the command lines run, for the report.
	Commands []string
	// CPU is the CPU use during the measured run.
	CPU CPUUse
	// Output is what the measured run printed.
	Output string
}

// PgbenchOutput is the part of pgbench's summary the report uses.
type PgbenchOutput struct {
	// TPS is "tps = ... (without initial connection time)".
	TPS float64
	// LatencyAvg is "latency average = ... ms".
	LatencyAvg time.Duration
	// Transactions is "number of transactions actually processed".
	Transactions int64
	// Failed is "number of failed transactions" (Postgres 15 and later;
	// zero when the line is absent).
	Failed int64
}

var (
	pgbenchTPS     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	pgbenchLatency = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	pgbenchTx      = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	pgbenchFailed  = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

// ParsePgbench reads the summary pgbench prints at the end of a run. It
// fails when there is no tps line.
func ParsePgbench(out string) (PgbenchOutput, error) {
	var r PgbenchOutput
	m := pgbenchTPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("pgbench printed no \"tps = ... (without initial connection time)\" line")
	}
	tps, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return r, fmt.Errorf("pgbench tps %q: %w", m[1], err)
	}
	r.TPS = tps
	if m := pgbenchLatency.FindStringSubmatch(out); m != nil {
		if v, err := strconv.ParseFloat(m[1], 64); err == nil {
			r.LatencyAvg = time.Duration(v * float64(time.Millisecond))
		}
	}
	if m := pgbenchTx.FindStringSubmatch(out); m != nil {
		r.Transactions, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := pgbenchFailed.FindStringSubmatch(out); m != nil {
		r.Failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

// RunPgbench initialises a pgbench database on the cluster and runs the
// built-in simple-update script against it, as the server's user when this
// process is root. cpu, if not nil, measures the CPU use of the run.
func (p *Postgres) RunPgbench(ctx context.Context, cfg Pgbench, cpu *CPUMeter) (PgbenchResult, error) {
	var res PgbenchResult
	if err := p.CreateDatabase(ctx, "pgbench"); err != nil {
		return res, err
	}
	conn := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(p.Port()), "-U", "postgres"}
	initArgs := append([]string{"-i", "-q", "-s", strconv.Itoa(cfg.Scale)}, conn...)
	initArgs = append(initArgs, "pgbench")
	runArgs := append([]string{"-b", "simple-update", "-c", strconv.Itoa(cfg.Clients), "-j", strconv.Itoa(cfg.Threads),
		"-T", strconv.Itoa(int(cfg.Duration / time.Second))}, conn...)
	runArgs = append(runArgs, "pgbench")
	res.Commands = []string{"pgbench " + strings.Join(initArgs, " "), "pgbench " + strings.Join(runArgs, " ")}

	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+10*time.Minute)
	defer cancel()
	if out, err := p.command(ctx, "pgbench", initArgs...).CombinedOutput(); err != nil {
		return res, fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	var before CPUSnapshot
	if cpu != nil {
		before = cpu.Snapshot()
	}
	out, err := p.command(ctx, "pgbench", runArgs...).CombinedOutput()
	if err != nil {
		return res, fmt.Errorf("pgbench: %v\n%s", err, out)
	}
	if cpu != nil {
		res.CPU = cpu.Since(before)
	}
	res.Output = strings.TrimSpace(string(out))
	res.PgbenchOutput, err = ParsePgbench(res.Output)
	return res, err
}
