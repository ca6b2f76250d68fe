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
		p("Check in cloud-app's database after the runs: %d links created and %d tokens used for %d successful redemptions (warm-ups included)%s.\n\n",
			m.Redeem.LinksCreated, m.Redeem.TokensUsed, want, okIf(m.Redeem.LinksCreated == want && m.Redeem.TokensUsed == want))
		failures(w, m.Redeem.Levels)
		if len(m.Redeem.Statements) > 0 {
			p("Statements by total execution time in the server (pg_stat_statements, all redemption runs):\n\n")
			p("| calls | total ms | mean ms | rows | statement |\n|---:|---:|---:|---:|---|\n")
			for _, s := range m.Redeem.Statements {
				q := s.Query
				if len(q) > 140 {
					q = q[:140] + "…"
				}
				p("| %d | %.0f | %.3f | %d | `%s` |\n", s.Calls, float64(s.Total)/1e6, float64(s.Mean)/1e6, s.Rows, strings.ReplaceAll(q, "|", "\\|"))
			}
			p("\n")
		}
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
			best := bestRate(m.UI.Levels)
			p("Target: at least %.0f requests/s — best %.0f/s: **%s**.\n\n", TargetUIRate, best, metIf(best >= TargetUIRate))
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
		p("Check in dc-app's database after the runs: %d synced spaces LINKED.\n\n", m.Import.SyncedSpaces)
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
	p("- at least %.0f redemptions/s: %.0f/s — **%s**\n", TargetRedeemRate, at.Rate(), metIf(at.Rate() >= TargetRedeemRate))
	p("- p99 at most %s ms: %s ms — **%s**\n", ms(TargetRedeemP99), ms(at.P99), metIf(at.OK > 0 && at.P99 <= TargetRedeemP99))
	if m.Pgbench != nil && m.Pgbench.TPS > 0 {
		ratio := at.Rate() / m.Pgbench.TPS
		p("- at least %.1f × pgbench's rate: %.0f / %.0f = **%.2f** — **%s**\n", TargetPgbenchRatio, at.Rate(), m.Pgbench.TPS, ratio, metIf(ratio >= TargetPgbenchRatio))
	}
	p("\n")
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
	for _, x := range s.Samples {
		heap, gor := "?", "?"
		if x.HeapInuse >= 0 {
			heap = fmt.Sprintf("%.1f", x.HeapInuse/(1<<20))
		}
		if x.Goroutines >= 0 {
			gor = fmt.Sprintf("%.0f", x.Goroutines)
		}
		p("| %s | %.1f | %s | %s | %d | %d |\n", x.At, float64(x.RSS)/(1<<20), heap, gor, x.OK, x.Errors)
	}
	p("\n")
	growth := "unknown"
	if !math.IsNaN(s.Growth) {
		growth = fmt.Sprintf("%+.1f%%", 100*s.Growth)
	}
	p("RSS growth from the warmed-up level (t = %s, %.1f MiB) to the end: %s. Targets: no errors — **%s**; RSS growth under %.0f%% — **%s**.\n\n",
		s.Baseline.At, float64(s.Baseline.RSS)/(1<<20), growth, metIf(r.Errors == 0 && r.OK > 0), 100*TargetSoakGrowth,
		metIf(!math.IsNaN(s.Growth) && s.Growth < TargetSoakGrowth))
	if len(r.Failures) > 0 {
		p("Errors: %s.\n\n", describeFailures(r))
	}
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
