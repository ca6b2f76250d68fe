// Command loadgen is Space Sync's load driver (issue 8). For each Postgres
// mode it starts a throwaway cluster, the real cloud-app (and dc-app)
// binaries configured only through the contract's environment variables and
// the Confluence Cloud simulator, seeds what each scenario needs directly in
// Postgres, drives bounded load over loopback HTTP, and prints a markdown
// report:
//
//	redeem   POST /api/v1/redemptions at each of -clients, a fresh token
//	         of a fresh sync per request
//	pgbench  pgbench -i, then the simple-update script, on the same cluster
//	uiapi    GET /api/ui/spaces/{key}/syncs with context JWTs
//	import   dc-app's POST /api/v1/synced-spaces end to end
//	soak     redemptions at -soak-rate for -soak-duration, sampling
//	         cloud-app's resident memory (in one -pg-mode only)
//
// Before each measured window an unmeasured warm-up runs on its own
// requests. With -pgss the report lists the statements of the top level's
// window (pg_stat_statements); with -profile a separate, unmeasured 10 s
// run is sampled with perf(1). `make bench` builds the services and runs
//
//	go run ./devstack/cmd/loadgen -bin bin -out BENCHMARKS.load.md -pgss -profile
//
// (about 12 minutes); `make bench BENCH_QUICK=1` adds -quick, a smoke run
// of every scenario in about 4 minutes whose numbers are not a measurement.
//
// Every target is 127.0.0.1 or localhost; every run is bounded in requests
// and time; the program stops by itself and removes what it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"spacesync.io/devstack/load"
)

// Scenario names.
const (
	scRedeem  = "redeem"
	scPgbench = "pgbench"
	scUIAPI   = "uiapi"
	scImport  = "import"
	scSoak    = "soak"
)

var allScenarios = []string{scRedeem, scPgbench, scUIAPI, scImport, scSoak}

// quickDefaults are the flags -quick sets, unless given: every scenario
// runs briefly, enough to show that it works end to end.
var quickDefaults = map[string]string{
	"duration":         "3s",
	"warmup":           "1s",
	"ui-duration":      "3s",
	"import-duration":  "3s",
	"pgbench-scale":    "2",
	"pgbench-duration": "5s",
	"soak-duration":    "25s",
	"soak-rate":        "50",
	"soak-every":       "5s",
}

// Bounds on what the flags may ask for: a run always ends.
const (
	maxWindow    = 10 * time.Minute
	maxSoak      = 30 * time.Minute
	maxClients   = 512
	maxRequests  = 1_000_000
	maxSoakRate  = 5000
	maxPgbenchSc = 100
)

type options struct {
	bin        string
	out        string
	scenarios  []string
	modes      []string
	keep       bool
	statements bool
	profile    bool
	quick      bool
	soakMode   string
	tenants    int

	redeem     load.Levels
	ui         load.UIConfig
	imports    load.Levels
	importAuth []string
	pgbench    load.Pgbench
	soak       load.SoakConfig
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var scenarios, modes, clients, uiClients, importClients, importAuth string
	fs.StringVar(&o.bin, "bin", "bin", "directory holding the cloud-app and dc-app binaries (make build)")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	fs.StringVar(&scenarios, "scenarios", "all", "comma-separated: "+strings.Join(allScenarios, ", ")+", or all")
	fs.StringVar(&modes, "pg-mode", "fast,durable", "Postgres settings to run under, in order: fast (fsync off, dbtest's), durable (fsync and synchronous_commit on)")
	fs.StringVar(&o.soakMode, "soak-mode", "", "the one -pg-mode the soak runs in (default: the last one)")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory (service logs) and print where it is")
	fs.BoolVar(&o.statements, "pgss", false, "preload pg_stat_statements and report the statements that take the redemptions' and the UI API's database time")
	fs.BoolVar(&o.profile, "profile", false, "after the measured levels of redeem and uiapi, sample cloud-app with perf(1) for 10 s at the last concurrency (not measured) and report where its CPU went")
	fs.BoolVar(&o.quick, "quick", false, "a smoke run: short windows, small pgbench, a 25 s soak (flags given explicitly still win); not a measurement")
	fs.IntVar(&o.tenants, "tenants", 10, "tenants the redemption tokens are spread over")

	fs.StringVar(&clients, "clients", "1,8,64", "redeem: concurrent clients, one run each")
	fs.DurationVar(&o.redeem.Duration, "duration", 10*time.Second, "redeem: measured window per concurrency")
	fs.DurationVar(&o.redeem.Warmup, "warmup", 3*time.Second, "warm-up before each measured window (all closed-loop scenarios)")
	fs.IntVar(&o.redeem.Max, "max", 100_000, "redeem and import: at most this many requests (tokens seeded) per window")

	fs.StringVar(&uiClients, "ui-clients", "16,64", "uiapi: concurrent clients")
	fs.DurationVar(&o.ui.Duration, "ui-duration", 10*time.Second, "uiapi: measured window per concurrency")
	fs.IntVar(&o.ui.Max, "ui-max", 500_000, "uiapi: at most this many requests per window")
	fs.IntVar(&o.ui.Syncs, "ui-syncs", 10, "uiapi: syncs seeded in the listed space")
	fs.StringVar(&o.ui.SpaceKey, "ui-space", "ENG", "uiapi: the simulator space whose syncs are listed")

	fs.StringVar(&importClients, "import-clients", "8", "import: concurrent clients")
	fs.DurationVar(&o.imports.Duration, "import-duration", 10*time.Second, "import: measured window per concurrency")
	fs.StringVar(&importAuth, "import-auth", "session,basic", "import: how to authenticate to dc-app: session, basic")

	fs.IntVar(&o.pgbench.Scale, "pgbench-scale", 10, "pgbench -i -s")
	fs.IntVar(&o.pgbench.Clients, "pgbench-clients", 64, "pgbench -c")
	fs.IntVar(&o.pgbench.Threads, "pgbench-threads", 2, "pgbench -j")
	fs.DurationVar(&o.pgbench.Duration, "pgbench-duration", 20*time.Second, "pgbench -T (whole seconds)")

	fs.DurationVar(&o.soak.Duration, "soak-duration", 5*time.Minute, "soak: how long")
	fs.Float64Var(&o.soak.Rate, "soak-rate", 200, "soak: redemptions per second")
	fs.IntVar(&o.soak.Workers, "soak-workers", 64, "soak: most concurrent requests")
	fs.DurationVar(&o.soak.Every, "soak-every", 10*time.Second, "soak: memory sampling interval")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range quickDefaults {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return nil, fmt.Errorf("-quick: %s: %w", name, err)
				}
			}
		}
	}

	var err error
	if o.scenarios, err = pickList(scenarios, allScenarios, "-scenarios", true); err != nil {
		return nil, err
	}
	if o.modes, err = pickList(modes, []string{load.ModeFast, load.ModeDurable}, "-pg-mode", false); err != nil {
		return nil, err
	}
	if o.soakMode == "" {
		o.soakMode = o.modes[len(o.modes)-1]
	} else if !has(o.modes, o.soakMode) {
		return nil, fmt.Errorf("-soak-mode %q is not one of -pg-mode %s", o.soakMode, strings.Join(o.modes, ","))
	}
	if o.importAuth, err = pickList(importAuth, []string{load.AuthSession, load.AuthBasic}, "-import-auth", false); err != nil {
		return nil, err
	}
	if o.redeem.Clients, err = intList(clients, "-clients"); err != nil {
		return nil, err
	}
	if o.ui.Clients, err = intList(uiClients, "-ui-clients"); err != nil {
		return nil, err
	}
	if o.imports.Clients, err = intList(importClients, "-import-clients"); err != nil {
		return nil, err
	}
	o.ui.Warmup, o.imports.Warmup, o.imports.Max = o.redeem.Warmup, o.redeem.Warmup, o.redeem.Max
	checks := []struct {
		bad bool
		msg string
	}{
		{o.redeem.Duration <= 0 || o.redeem.Duration > maxWindow, "-duration must be in (0, 10m]"},
		{o.ui.Duration <= 0 || o.ui.Duration > maxWindow, "-ui-duration must be in (0, 10m]"},
		{o.imports.Duration <= 0 || o.imports.Duration > maxWindow, "-import-duration must be in (0, 10m]"},
		{o.redeem.Warmup < 0 || o.redeem.Warmup > maxWindow, "-warmup must be in [0, 10m]"},
		{o.redeem.Max < 1 || o.redeem.Max > maxRequests, "-max must be in [1, 1000000]"},
		{o.ui.Max < 1 || o.ui.Max > maxRequests, "-ui-max must be in [1, 1000000]"},
		{o.ui.Syncs < 0 || o.ui.Syncs > 1000, "-ui-syncs must be in [0, 1000]"},
		{o.tenants < 1 || o.tenants > 10_000, "-tenants must be in [1, 10000]"},
		{o.pgbench.Scale < 1 || o.pgbench.Scale > maxPgbenchSc, "-pgbench-scale must be in [1, 100]"},
		{o.pgbench.Clients < 1 || o.pgbench.Clients > 250, "-pgbench-clients must be in [1, 250]"},
		{o.pgbench.Threads < 1 || o.pgbench.Threads > o.pgbench.Clients, "-pgbench-threads must be in [1, -pgbench-clients]"},
		{o.pgbench.Duration < time.Second || o.pgbench.Duration > maxWindow, "-pgbench-duration must be in [1s, 10m]"},
		{o.soak.Duration <= 0 || o.soak.Duration > maxSoak, "-soak-duration must be in (0, 30m]"},
		{!(o.soak.Rate > 0 && o.soak.Rate <= maxSoakRate), "-soak-rate must be in (0, 5000]"},
		{o.soak.Workers < 1 || o.soak.Workers > maxClients, "-soak-workers must be in [1, 512]"},
		{o.soak.Every < time.Second, "-soak-every must be at least 1s"},
	}
	for _, c := range checks {
		if c.bad {
			return nil, errors.New(c.msg)
		}
	}
	for _, b := range []string{"cloud-app", "dc-app"} {
		needed := b == "cloud-app" || has(o.scenarios, scImport)
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil && needed {
			return nil, fmt.Errorf("no %s binary in -bin %s: run make build (or go build -o %s/%s ./%s) first", b, o.bin, o.bin, b, b)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	rep := &load.Report{
		Started: time.Now(),
		Command: "go run ./devstack/cmd/loadgen " + strings.Join(args, " "),
		Quick:   o.quick,
		Warmup:  o.redeem.Warmup,
		Machine: load.DescribeMachine(map[string]string{
			"cloud-app": filepath.Join(o.bin, "cloud-app"), "dc-app": filepath.Join(o.bin, "dc-app"),
		}),
		LoadBefore: load.LoadAvg(),
	}
	for _, mode := range o.modes {
		if ctx.Err() != nil {
			break
		}
		mr, err := runMode(ctx, o, mode, stderr)
		if err != nil {
			return err
		}
		rep.Modes = append(rep.Modes, mr)
	}
	rep.Finished = time.Now()
	rep.LoadAfter = load.LoadAvg()
	w := stdout
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(stdout, f)
	}
	rep.Markdown(w)
	return ctx.Err()
}

// runMode runs the chosen scenarios on a new cluster in mode. A scenario
// that fails is recorded in the report and the next one still runs, unless
// a service under test died.
func runMode(ctx context.Context, o *options, mode string, stderr io.Writer) (load.ModeReport, error) {
	mr := load.ModeReport{Mode: mode, LoadBefore: load.LoadAvg(), PgbenchCfg: o.pgbench}
	env, err := load.Start(ctx, load.Config{BinDir: o.bin, Mode: mode, Statements: o.statements, Profile: o.profile,
		Tenants: o.tenants, Progress: stderr})
	if err != nil {
		return mr, err
	}
	defer func() {
		if o.keep {
			fmt.Fprintf(stderr, "loadgen: kept the logs of the %s run in %s\n", mode, env.CloseKeep())
		} else {
			env.Close()
		}
	}()
	mr.Version, mr.Settings = env.PG.Version, env.PG.Settings
	fail := func(name string, err error) bool {
		mr.Errors = append(mr.Errors, fmt.Sprintf("%s: %v", name, err))
		fmt.Fprintf(stderr, "loadgen: %s failed: %v\n", name, err)
		return !env.Cloud.Alive() || ctx.Err() != nil
	}
	for _, sc := range o.scenarios {
		if ctx.Err() != nil {
			break
		}
		var stop bool
		switch sc {
		case scRedeem:
			r, err := env.Redeem(ctx, o.redeem)
			mr.Redeem = &r
			if err != nil {
				stop = fail(sc, err)
			}
		case scPgbench:
			fmt.Fprintf(stderr, "loadgen: %s pgbench: scale %d, %d clients, %s\n", time.Now().Format("15:04:05"), o.pgbench.Scale, o.pgbench.Clients, o.pgbench.Duration)
			r, err := env.PG.RunPgbench(ctx, o.pgbench, env.CPU)
			if err != nil {
				stop = fail(sc, err)
				break
			}
			fmt.Fprintf(stderr, "loadgen: %s pgbench: %.0f tps; CPU %s\n", time.Now().Format("15:04:05"), r.TPS, r.CPU)
			mr.Pgbench = &r
		case scUIAPI:
			r, err := env.UIAPI(ctx, o.ui)
			mr.UI = &r
			if err != nil {
				stop = fail(sc, err)
			}
		case scImport:
			r, err := env.Import(ctx, o.imports, o.importAuth)
			mr.Import = &r
			if err != nil {
				stop = fail(sc, err)
			}
		case scSoak:
			if mode != o.soakMode {
				fmt.Fprintf(stderr, "loadgen: soak: runs with the %s settings only (-soak-mode)\n", o.soakMode)
				break
			}
			r, err := env.Soak(ctx, o.soak)
			mr.Soak = &r
			if err != nil {
				stop = fail(sc, err)
			}
		}
		if stop {
			break
		}
	}
	return mr, nil
}

// pickList parses a comma-separated list whose items must be in allowed;
// with all, "all" means every allowed item.
func pickList(s string, allowed []string, flagName string, all bool) ([]string, error) {
	if all && strings.TrimSpace(s) == "all" {
		return allowed, nil
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !has(allowed, part) {
			return nil, fmt.Errorf("%s: unknown %q (want %s)", flagName, part, strings.Join(allowed, ", "))
		}
		if !has(out, part) {
			out = append(out, part)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", flagName)
	}
	return out, nil
}

// intList parses a comma-separated list of client counts.
func intList(s, flagName string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil || n < 1 || n > maxClients {
			return nil, fmt.Errorf("%s: %q is not a client count in [1, %d]", flagName, part, maxClients)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", flagName)
	}
	return out, nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
