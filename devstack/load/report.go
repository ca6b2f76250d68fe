package load

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// Targets of issue 8 on the 2-core machine.
const (
	TargetRedeemRate    = 1000.0
	TargetRedeemP99     = 50 * time.Millisecond
	TargetRedeemClients = 64
	TargetPgbenchRatio  = 0.5
	TargetUIRate        = 5000.0
	TargetSoakGrowth    = 0.10
)

// Report is a whole loadgen run.
type Report struct {
	Started  time.Time
	Finished time.Time
	// Command is the command line that produced the report.
	Command string
	// Quick is set for a smoke run (-quick): the numbers are not a
	// measurement.
	Quick bool
	// Warmup is the unmeasured warm-up before each measured window.
	Warmup  time.Duration
	Machine Machine
	// LoadBefore and LoadAfter are /proc/loadavg around the run.
	LoadBefore, LoadAfter string
	Modes                 []ModeReport
}

// ModeReport is what was measured on one cluster.
type ModeReport struct {
	Mode     string
	Version  string
	Settings [][2]string
	// LoadBefore is /proc/loadavg when this cluster's runs began.
	LoadBefore string
	Redeem     *RedeemReport
	Pgbench    *PgbenchResult
	PgbenchCfg Pgbench
	UI         *UIReport
	Import     *ImportReport
	Soak       *SoakReport
	// Errors are scenarios that failed to run, with why.
	Errors []string
}

// Markdown writes the report.
func (r *Report) Markdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# Load test report\n\n")
	if r.Quick {
		p("**A smoke run (-quick): short windows, a small pgbench, a short soak. It shows that every scenario works end to end; its numbers are not a measurement.**\n\n")
	}
	p("Run %s → %s (%s), command:\n\n```\n%s\n```\n\n", r.Started.UTC().Format("2006-01-02 15:04:05Z"),
		r.Finished.UTC().Format("15:04:05Z"), r.Finished.Sub(r.Started).Round(time.Second), r.Command)
	p("## Machine\n\n| what | value |\n|---|---|\n")
	p("| cores (nproc) | %d |\n| CPU | %s |\n| memory | %.1f GiB |\n| kernel | %s |\n", r.Machine.NumCPU, r.Machine.CPUModel,
		float64(r.Machine.MemTotal)/(1<<30), r.Machine.Kernel)
	p("| Go (loadgen) | %s |\n", r.Machine.GoLoadgen)
	names := make([]string, 0, len(r.Machine.GoBinaries))
	for n := range r.Machine.GoBinaries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p("| Go (%s binary) | %s |\n", n, r.Machine.GoBinaries[n])
	}
	if len(r.Modes) > 0 {
		p("| Postgres | %s |\n", r.Modes[0].Version)
	}
	p("| load average before / after (1, 5, 15 min) | %s / %s |\n\n", r.LoadBefore, r.LoadAfter)
	p("Everything runs on this machine over loopback: the load generator, cloud-app, dc-app, the " +
		"Confluence simulator (inside the load generator) and Postgres share the cores, so the CPU " +
		"columns say where the cores went; \"other\" is work outside the processes under test " +
		"(other users of the machine, the kernel).\n\n")
	p("## Method\n\n")
	p("- Each scenario starts from a new throwaway Postgres cluster with the settings shown, and the real `cloud-app` " +
		"(and `dc-app`) binaries configured only through the contract's environment variables (DESIGN section 11); " +
		"tenants, syncs and tokens are seeded directly in cloud-app's database in the shapes its store writes, " +
		"tokens minted with the configured key set. The services run on their own defaults otherwise (each holds at most " +
		"20 Postgres connections, shared/db's default), so at 64 clients requests also queue for a connection.\n")
	p("- Closed loop: each client sends its next request when the previous answer has been read to the end, over "+
		"keep-alive loopback connections. Before every measured window an unmeasured warm-up of %s runs at the same "+
		"concurrency on its own requests (and tokens); the warm-up's counts are listed under each table.\n", r.Warmup)
	p("- Latency is taken in the client, from just before the request is sent to the end of the response body. " +
		"A request counts as ok only when its status is the expected one (201 for a redemption and an import, " +
		"200 for the UI API); any other status or a transport error is an error and is not in the percentiles. " +
		"Rates are ok requests per second of the window (from the start to the last answer).\n")
	p("- Redemptions and imports consume a fresh token each: every token is minted for its own new sync of its " +
		"own space, used once, never reused between warm-up, measurement or levels. After the runs the database " +
		"is counted to check that every ok answer made exactly one link.\n")
	p("- Percentiles are nearest-rank over every ok request of the window. CPU is read from /proc for each " +
		"process group over the window.\n\n")
	for i := range r.Modes {
		r.Modes[i].markdown(w)
	}
}

func (m *ModeReport) markdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	title := map[string]string{
		ModeFast:    "fast settings (dbtest's: fsync, synchronous_commit and full_page_writes off — not crash-safe)",
		ModeDurable: "production-like settings (fsync, synchronous_commit and full_page_writes on)",
	}[m.Mode]
	p("## Postgres with %s\n\n", title)
	p("Load average when these runs began: %s.\n\n", m.LoadBefore)
	p("| setting | value (as the server reports it) |\n|---|---|\n")
	for _, s := range m.Settings {
		v := s[1]
		if v == "" {
			v = "(empty)"
		}
		p("| %s | %s |\n", s[0], v)
	}
	p("\n")
	for _, e := range m.Errors {
		p("**Scenario failed:** %s\n\n", e)
	}
	if m.Redeem != nil {
		p("### Redemptions (`POST /api/v1/redemptions`, a fresh token of a fresh sync each)\n\n")
		levelTable(w, m.Redeem.Levels, "redemption")
		var want int64
		for _, l := range m.Redeem.Levels {
			want += int64(l.WarmOK + l.OK)
		}
		if m.Redeem.Profile != nil {
			want += int64(m.Redeem.Profile.OK)
		}
		p("Check in cloud-app's database after the runs: %d links created and %d tokens used for %d successful redemptions (warm-ups and the profiling run included)%s.\n\n",
			m.Redeem.LinksCreated, m.Redeem.TokensUsed, want, okIf(m.Redeem.LinksCreated == want && m.Redeem.TokensUsed == want))
		failures(w, m.Redeem.Levels)
		levelStatements(w, m.Redeem.Levels, "redemption")
	}
	if m.Pgbench != nil {
		pb := m.Pgbench
		p("### pgbench (same cluster, same settings)\n\n```\n%s\n```\n\n", strings.Join(pb.Commands, "\n"))
		p("| tps | latency avg | transactions | failed | CPU (cores) |\n|---:|---:|---:|---:|---|\n")
		p("| %.0f | %s ms | %d | %d | %s |\n\n", pb.TPS, ms(pb.LatencyAvg), pb.Transactions, pb.Failed, pb.CPU)
		p("<details><summary>pgbench's output</summary>\n\n```\n%s\n```\n\n</details>\n\n", pb.Output)
	}
	if m.Redeem != nil {
		m.redeemTargets(w)
	}
	if m.UI != nil {
		p("### Iframe API (`GET %s`, context JWTs, admin decisions cached)\n\n", fmt.Sprintf(UIPath, "{key}"))
		if m.UI.Pending != "" {
			p("**Pending:** %s. Re-run `-scenarios uiapi` once it is.\n\n", m.UI.Pending)
		} else {
			p("User %s (site admin, administers every space through confluence-admins) lists the %d syncs of space %s; one answer is %d bytes.\n\n",
				m.UI.User, m.UI.Syncs, m.UI.SpaceKey, m.UI.ResponseBytes)
			levelTable(w, m.UI.Levels, "request")
			failures(w, m.UI.Levels)
			p("Caching check: after the first request, cloud-app made %d calls to the Confluence simulator for the %d requests of the warm-ups and runs.\n\n",
				m.UI.ConfluenceCalls, m.UI.Requests)
			levelStatements(w, m.UI.Levels, "request")
			best := bestRate(m.UI.Levels)
			p("Target: at least %.0f requests/s — best %.0f/s: **%s**.\n\n", TargetUIRate, best, metIf(best >= TargetUIRate))
			if best < TargetUIRate && len(m.UI.Levels) > 0 {
				bounds(w, m.UI.Levels[len(m.UI.Levels)-1], "request", m.UI.Profile, false)
			}
			profileMarkdown(w, m.UI.Profile)
		}
	}
	if m.Import != nil {
		p("### dc-app imports end to end (`POST /api/v1/synced-spaces` on dc-app → preview and redemption on cloud-app)\n\n")
		for _, a := range m.Import.Auth {
			how := map[string]string{
				AuthBasic:   "HTTP Basic on every request (automation; dc-app runs bcrypt each time)",
				AuthSession: "signed in once; session cookie and CSRF token (the page's own calls)",
			}[a.Auth]
			p("Authentication: %s.\n\n", how)
			levelTable(w, a.Levels, "import")
			failures(w, a.Levels)
		}
		var want int64
		for _, a := range m.Import.Auth {
			for _, l := range a.Levels {
				want += int64(l.WarmOK + l.OK)
			}
		}
		p("Check after the runs: %d synced spaces LINKED in dc-app's database and %d links made in cloud-app's for %d successful imports (warm-ups included)%s.\n\n",
			m.Import.SyncedSpaces, m.Import.Links, want, okIf(m.Import.SyncedSpaces == want && m.Import.Links == want))
	}
	if m.Soak != nil {
		m.soakMarkdown(w)
	}
}

func (m *ModeReport) redeemTargets(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	var at *Level
	for i := range m.Redeem.Levels {
		if m.Redeem.Levels[i].Clients == TargetRedeemClients {
			at = &m.Redeem.Levels[i]
		}
	}
	if at == nil {
		p("Targets: not judged (no run at %d clients).\n\n", TargetRedeemClients)
		return
	}
	p("Targets at %d clients:\n\n", TargetRedeemClients)
	rateOK := at.Rate() >= TargetRedeemRate
	p99OK := at.OK > 0 && at.P99 <= TargetRedeemP99
	ratioOK := true
	p("- at least %.0f redemptions/s: %.0f/s — **%s**\n", TargetRedeemRate, at.Rate(), metIf(rateOK))
	p("- p99 at most %s ms: %s ms — **%s**\n", ms(TargetRedeemP99), ms(at.P99), metIf(p99OK))
	if m.Pgbench != nil && m.Pgbench.TPS > 0 {
		ratio := at.Rate() / m.Pgbench.TPS
		ratioOK = ratio >= TargetPgbenchRatio
		p("- at least %.1f × pgbench's rate: %.0f / %.0f = **%.2f** — **%s**\n", TargetPgbenchRatio, at.Rate(), m.Pgbench.TPS, ratio, metIf(ratioOK))
	} else {
		p("- at least %.1f × pgbench's rate: not judged (no pgbench run)\n", TargetPgbenchRatio)
	}
	p("\n")
	if !rateOK || !p99OK || !ratioOK {
		var extra []string
		if !ratioOK && m.Pgbench != nil && m.Pgbench.TPS > 0 && at.Rate() > 0 {
			pb := m.Pgbench
			var redeemCPU, pgbenchCPU float64
			for _, c := range at.CPU.Cores {
				redeemCPU += c
			}
			for _, c := range pb.CPU.Cores {
				pgbenchCPU += c
			}
			extra = append(extra, fmt.Sprintf("Against pgbench: a simple-update transaction is 5 statements sent by a C client straight to Postgres and cost %.2f ms of CPU (Postgres and pgbench); a redemption is an HTTP request, a JWE decryption, JSON and a transaction of about a dozen statements through GORM, and cost %.2f ms of CPU (all groups) — %.1f× the work per transaction.",
				pgbenchCPU*1000/pb.TPS, redeemCPU*1000/at.Rate(), (redeemCPU/at.Rate())/max(pgbenchCPU/pb.TPS, 1e-12)))
		}
		bounds(w, *at, "redemption", m.Redeem.Profile, true, extra...)
	}
	profileMarkdown(w, m.Redeem.Profile)
}

// levelStatements lists what the database ran during the last level's
// measured window, with calls per request.
func levelStatements(w io.Writer, levels []Level, unit string) {
	if len(levels) == 0 {
		return
	}
	l := levels[len(levels)-1]
	if len(l.Statements) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	requests := l.OK + l.Errors
	p("Statements in cloud-app's database during the %d-client window (pg_stat_statements, nested statements such as foreign-key checks included; %d %ss):\n\n", l.Clients, requests, unit)
	p("| calls | per %s | total ms | mean ms | rows | statement |\n|---:|---:|---:|---:|---:|---|\n", unit)
	for _, s := range l.Statements {
		q := s.Query
		if len(q) > 140 {
			q = q[:140] + "…"
		}
		per := "-"
		if requests > 0 {
			per = fmt.Sprintf("%.2f", float64(s.Calls)/float64(requests))
		}
		p("| %d | %s | %.0f | %.3f | %d | `%s` |\n", s.Calls, per, float64(s.Total)/1e6, float64(s.Mean)/1e6, s.Rows, strings.ReplaceAll(q, "|", "\\|"))
	}
	p("\n")
}

// bounds says, from the numbers of the level at which a target was
// missed, what limited it.
func bounds(w io.Writer, l Level, unit string, prof *ProfileRun, closedLoopP99 bool, extra ...string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("**What bounds it** (at %d clients):\n\n", l.Clients)
	for _, line := range Bounds(l, unit, closedLoopP99) {
		p("- %s\n", line)
	}
	sts, requests := l.Statements, int64(l.OK+l.Errors)
	if len(sts) > 0 && requests > 0 {
		var dbTime time.Duration
		var calls int64
		for _, s := range sts {
			dbTime += s.Total
			calls += s.Calls
		}
		p("- In the database, the top %d statements take %.3f ms of execution per %s over %.1f statements (nested ones included) per %s (`%s` %.3f ms of that); the rest of Postgres's CPU per %s is parsing, planning, locking, commit and the protocol.\n",
			len(sts), float64(dbTime)/1e6/float64(requests), unit, float64(calls)/float64(requests), unit,
			firstWords(sts[0].Query), float64(sts[0].Total)/1e6/float64(requests), unit)
	}
	if prof != nil && prof.Profile != nil && prof.Profile.Err == "" && len(prof.Profile.Packages) > 0 {
		var parts []string
		for i, e := range prof.Profile.Packages {
			if i == 5 {
				break
			}
			parts = append(parts, fmt.Sprintf("%s %.0f%%", e.Name, e.Percent))
		}
		p("- In cloud-app (perf, below), its CPU goes to: %s.\n", strings.Join(parts, ", "))
	}
	for _, e := range extra {
		p("- %s\n", e)
	}
	p("\n")
}

// Bounds are the sentences that say what limited a level.
func Bounds(l Level, unit string, closedLoopP99 bool) []string {
	var out []string
	u := l.CPU
	rate := l.Rate()
	if u.NumCPU > 0 && rate > 0 {
		busy := u.Busy / float64(u.NumCPU)
		var parts []string
		var ours float64
		for _, g := range []string{GroupCloudApp, GroupDCApp, GroupPostgres, GroupLoadgen} {
			if c, ok := u.Cores[g]; ok && c > 0 {
				parts = append(parts, fmt.Sprintf("%s %.2f ms", g, c*1000/rate))
				ours += c
			}
		}
		if busy >= 0.9 {
			out = append(out, fmt.Sprintf("CPU: the machine was saturated (%.2f of %d cores busy). Per %s: %s of CPU; at that cost the %d cores allow about %.0f/s.",
				u.Busy, u.NumCPU, unit, strings.Join(parts, ", "), u.NumCPU, float64(u.NumCPU)*rate/max(ours, 1e-9)))
		} else {
			out = append(out, fmt.Sprintf("Not CPU: the machine had idle cores (%.2f of %d busy, iowait %.2f), so requests waited on something else — locks, WAL flushes (fsync) or round trips. Per %s: %s of CPU.",
				u.Busy, u.NumCPU, u.IOWait, unit, strings.Join(parts, ", ")))
		}
		if u.Other >= 0.2 {
			out = append(out, fmt.Sprintf("Other work on the machine took %.2f cores (%.0f%% of it) during the window: these numbers understate a quiet machine.",
				u.Other, 100*u.Other/float64(u.NumCPU)))
		}
	}
	if closedLoopP99 && l.Clients > 0 {
		need := float64(l.Clients) / TargetRedeemP99.Seconds()
		out = append(out, fmt.Sprintf("Latency at %d clients is queueing: in a closed loop the mean latency is clients / rate (%d / %.0f/s = %s ms, measured mean %s ms), so a p99 of at most %s ms at %d clients needs well over %.0f/s.",
			l.Clients, l.Clients, rate, ms(time.Duration(float64(l.Clients)/max(rate, 1e-9)*float64(time.Second))), ms(l.Mean), ms(TargetRedeemP99), l.Clients, need))
	}
	return out
}

// profileMarkdown writes a profiling run's result.
func profileMarkdown(w io.Writer, run *ProfileRun) {
	if run == nil || run.Profile == nil {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	pr := run.Profile
	if pr.Err != "" {
		p("No CPU profile of %s: %s.\n\n", pr.Process, pr.Err)
		return
	}
	p("<details><summary>CPU profile of %s (perf, %d Hz, %s at %d clients after the measured runs, %.0f/s while sampled, about %d samples)</summary>\n\n",
		pr.Process, profileHz, profileWindow, run.Clients, run.Rate, pr.Samples)
	p("Self time by package (runtime includes the garbage collector and the scheduler; kernel is mostly loopback TCP and futexes):\n\n| package | self %% |\n|---|---:|\n")
	for _, e := range pr.Packages {
		p("| %s | %.1f |\n", e.Name, e.Percent)
	}
	p("\nTop functions by self time:\n\n| function | self %% |\n|---|---:|\n")
	for _, e := range pr.Self {
		p("| `%s` | %.1f |\n", e.Name, e.Percent)
	}
	if len(pr.Inclusive) > 0 {
		p("\nSpace Sync's functions by inclusive time (they and their callees):\n\n| function | inclusive %% |\n|---|---:|\n")
		for _, e := range pr.Inclusive {
			p("| `%s` | %.1f |\n", e.Name, e.Percent)
		}
	}
	p("\n</details>\n\n")
}

func (m *ModeReport) soakMarkdown(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	s := m.Soak
	p("### Soak (redemptions at %.0f/s, open loop, up to %d concurrent, for %s)\n\n", s.Config.Rate, s.Config.Workers, s.Config.Duration)
	r := s.Result
	p("| redemptions/s | p50 ms | p90 ms | p99 ms | max ms | ok | errors | CPU (cores) |\n|---:|---:|---:|---:|---:|---:|---:|---|\n")
	p("| %.0f | %s | %s | %s | %s | %d | %d | %s |\n\n", r.Rate(), ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), r.OK, r.Errors, s.CPU)
	p("Latency counts from when each request was due, so falling behind the rate shows.\n\n")
	p("| t | cloud-app RSS MiB | Go heap in use MiB | goroutines | ok so far | errors so far |\n|---:|---:|---:|---:|---:|---:|\n")
	for i, x := range s.Samples {
		at := x.At.String()
		if i == len(s.Samples)-1 {
			at += " (end)"
		}
		heap, gor := "?", "?"
		if x.HeapInuse >= 0 {
			heap = fmt.Sprintf("%.1f", x.HeapInuse/(1<<20))
		}
		if x.Goroutines >= 0 {
			gor = fmt.Sprintf("%.0f", x.Goroutines)
		}
		p("| %s | %.1f | %s | %s | %d | %d |\n", at, float64(x.RSS)/(1<<20), heap, gor, x.OK, x.Errors)
	}
	p("\n")
	growth := "unknown"
	if !math.IsNaN(s.Growth) {
		growth = fmt.Sprintf("%+.1f%%", 100*s.Growth)
	}
	var peak int64
	for _, x := range s.Samples {
		peak = max(peak, x.RSS)
	}
	p("RSS growth from the warmed-up level (t = %s, %.1f MiB) to the end: %s (peak %.1f MiB). Targets: no errors — **%s**; RSS growth under %.0f%% — **%s**.\n\n",
		s.Baseline.At, float64(s.Baseline.RSS)/(1<<20), growth, float64(peak)/(1<<20), metIf(r.Errors == 0 && r.OK > 0), 100*TargetSoakGrowth,
		metIf(!math.IsNaN(s.Growth) && s.Growth < TargetSoakGrowth))
	if len(r.Failures) > 0 {
		p("Errors: %s.\n\n", describeFailures(r))
	}
	p("Check in cloud-app's database: %d links made during the soak for %d successful redemptions%s.\n\n",
		s.LinksCreated, r.OK, okIf(s.LinksCreated == int64(r.OK)))
	if s.Config.Duration < 5*time.Minute {
		p("This soak ran %s, shorter than the 5 minutes of the target: a check that the scenario works, not the measurement.\n\n", s.Config.Duration)
	}
}

func levelTable(w io.Writer, levels []Level, unit string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("| clients | %ss/s | p50 ms | p90 ms | p99 ms | max ms | ok | errors | window | CPU (cores) | CPU ms per %s | ceiling/s ¹ |\n", unit, unit)
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|\n")
	for _, l := range levels {
		window := l.Elapsed.Round(100 * time.Millisecond).String()
		if l.Exhausted {
			window += " (ran out of prepared requests)"
		}
		p("| %d | %.0f | %s | %s | %s | %s | %d | %d | %s | %s | %s | %s |\n", l.Clients, l.Rate(), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.Max),
			l.OK, l.Errors, window, l.CPU, perRequest(l), ceiling(l))
	}
	p("\n¹ The rate these processes could reach if they had all %d cores to themselves at the same CPU cost per %s: "+
		"cores × 1000 / (sum of the CPU ms per %s). An estimate for a busy machine, not a measurement.\n\n", levelsNumCPU(levels), unit, unit)
}

// perRequest is the CPU time each process group spent per successful
// request.
func perRequest(l Level) string {
	rate := l.Rate()
	if rate <= 0 {
		return "-"
	}
	var parts []string
	for _, g := range []string{GroupCloudApp, GroupDCApp, GroupPostgres, GroupLoadgen} {
		if c, ok := l.CPU.Cores[g]; ok && c > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", g, c*1000/rate))
		}
	}
	return strings.Join(parts, ", ")
}

// ceiling is the rate the measured processes would reach on all the
// machine's cores at the CPU cost per request they showed.
func ceiling(l Level) string {
	rate := l.Rate()
	var cores float64
	for _, c := range l.CPU.Cores {
		cores += c
	}
	if rate <= 0 || cores <= 0 || l.CPU.NumCPU == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(l.CPU.NumCPU)*rate/cores)
}

func levelsNumCPU(levels []Level) int {
	for _, l := range levels {
		if l.CPU.NumCPU > 0 {
			return l.CPU.NumCPU
		}
	}
	return 0
}

func failures(w io.Writer, levels []Level) {
	for _, l := range levels {
		if len(l.Failures) > 0 {
			fmt.Fprintf(w, "Errors at %d clients: %s.\n\n", l.Clients, describeFailures(l.Result))
		}
		if l.WarmErrors > 0 {
			fmt.Fprintf(w, "The warm-up at %d clients had %d errors.\n\n", l.Clients, l.WarmErrors)
		}
	}
	var parts []string
	for _, l := range levels {
		s := fmt.Sprintf("%d clients: %d ok in %s", l.Clients, l.WarmOK, l.WarmElapsed.Round(100*time.Millisecond))
		if l.WarmExhausted {
			s += " (ran out of prepared requests)"
		}
		parts = append(parts, s)
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "Unmeasured warm-ups: %s.\n\n", strings.Join(parts, "; "))
	}
}

func bestRate(levels []Level) float64 {
	var best float64
	for _, l := range levels {
		best = max(best, l.Rate())
	}
	return best
}

func metIf(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func okIf(ok bool) string {
	if ok {
		return " — consistent"
	}
	return " — **inconsistent**"
}
