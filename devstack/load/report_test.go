package load

import (
	"strings"
	"testing"
	"time"
)

// level is a measured level of n ok requests in a 10 s window at clients,
// on a saturated 2-core machine.
func testLevel(clients, ok int, p99 time.Duration) Level {
	return Level{
		Result: Result{Clients: clients, Summary: Summary{OK: ok, Elapsed: 10 * time.Second, P50: p99 / 4, P99: p99, Max: p99, Mean: p99 / 3}},
		CPU: CPUUse{NumCPU: 2, Busy: 2, Other: 0.5, Wall: 10 * time.Second,
			Cores: map[string]float64{GroupCloudApp: 0.7, GroupPostgres: 0.6, GroupLoadgen: 0.2}},
		WarmOK: 100, WarmElapsed: 3 * time.Second,
	}
}

func TestReport_Markdown(t *testing.T) {
	redeem := &RedeemReport{Levels: []Level{testLevel(1, 3000, 5*time.Millisecond), testLevel(64, 8000, 200*time.Millisecond)}}
	redeem.LinksCreated, redeem.TokensUsed = 11200, 11200 // 2 × 100 warm-up + 11,000 ok
	mode := ModeReport{
		Mode: ModeDurable, Settings: [][2]string{{"fsync", "on"}},
		Redeem:  redeem,
		Pgbench: &PgbenchResult{PgbenchOutput: PgbenchOutput{TPS: 2000}, CPU: CPUUse{Cores: map[string]float64{GroupPostgres: 0.8, GroupLoadgen: 0.2}}},
		UI:      &UIReport{Pending: "this cloud-app build answers 404"},
		Soak: &SoakReport{Config: SoakConfig{Rate: 200, Workers: 64, Duration: 5 * time.Minute},
			Result: Result{Summary: Summary{OK: 60000, Elapsed: 5 * time.Minute}}, LinksCreated: 59999,
			Samples: []SoakSample{{At: 0, RSS: 40 << 20}, {At: time.Minute, RSS: 50 << 20}, {At: 5 * time.Minute, RSS: 52 << 20}}},
	}
	mode.Soak.Baseline, mode.Soak.Growth = BaselineAndGrowth(mode.Soak.Samples, time.Minute)
	r := &Report{Started: time.Unix(0, 0), Finished: time.Unix(600, 0), Command: "loadgen", Warmup: 3 * time.Second, Modes: []ModeReport{mode}}
	var b strings.Builder
	r.Markdown(&b)
	out := b.String()
	for _, want := range []string{
		"unmeasured warm-up of 3s",
		"| 64 | 800 |", // 8,000 ok in 10 s
		"at least 1000 redemptions/s: 800/s — **missed**",
		"p99 at most 50.0 ms: 200 ms — **missed**",
		"800 / 2000 = **0.40** — **missed**",
		"**What bounds it** (at 64 clients)",
		"11200 links created and 11200 tokens used for 11200 successful redemptions (warm-ups and the profiling run included) — consistent",
		"Against pgbench",
		"**Pending:** this cloud-app build answers 404",
		"59999 links made during the soak for 60000 successful redemptions — **inconsistent**",
		"RSS growth from the warmed-up level (t = 1m0s, 50.0 MiB) to the end: +4.0% (peak 52.0 MiB)",
		"| 5m0s (end) |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(out, "smoke run") {
		t.Errorf("a full run's report calls itself a smoke run")
	}
	r.Quick = true
	b.Reset()
	r.Markdown(&b)
	if !strings.Contains(b.String(), "not a measurement") {
		t.Errorf("a -quick report does not say it is not a measurement")
	}
}
