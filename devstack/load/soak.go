package load

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/http"
	"time"

	"spacesync.io/shared/protocol"
)

// SoakConfig is the soak scenario's configuration.
type SoakConfig struct {
	// Rate is redemptions per second, sent open-loop by at most Workers
	// concurrent clients.
	Rate    float64
	Workers int
	// Duration is how long it runs; Every how often cloud-app's memory is
	// sampled.
	Duration, Every time.Duration
}

// SoakSample is cloud-app's state at one instant of the soak.
type SoakSample struct {
	At time.Duration
	// RSS is VmRSS from /proc/<pid>/status.
	RSS int64
	// HeapInuse and Goroutines come from cloud-app's /metrics
	// (go_memstats_heap_inuse_bytes, go_goroutines); -1 when unreadable.
	HeapInuse, Goroutines float64
	// OK and Errors are the redemptions finished so far.
	OK, Errors int64
}

// SoakReport is the soak scenario's result.
type SoakReport struct {
	Config  SoakConfig
	Result  Result
	CPU     CPUUse
	Samples []SoakSample
	// Baseline is the sample growth is measured from: the last one taken
	// in the first minute (or in the first fifth of a soak shorter than
	// five minutes), when cloud-app has warmed up.
	Baseline SoakSample
	// Growth is (last RSS - baseline RSS) / baseline RSS.
	Growth float64
	// LinksCreated is how many links cloud-app's database gained during
	// the soak: one per successful redemption.
	LinksCreated int64
}

// soakBaseline is when the warmed-up memory level is taken.
func soakBaseline(d time.Duration) time.Duration {
	if d >= 5*time.Minute {
		return time.Minute
	}
	return d / 5
}

// BaselineAndGrowth picks the baseline sample (the last one at or before
// at) and the growth of RSS from it to the last sample.
func BaselineAndGrowth(samples []SoakSample, at time.Duration) (SoakSample, float64) {
	if len(samples) == 0 {
		return SoakSample{}, math.NaN()
	}
	base := samples[0]
	for _, s := range samples {
		if s.At <= at {
			base = s
		}
	}
	last := samples[len(samples)-1]
	if base.RSS <= 0 {
		return base, math.NaN()
	}
	return base, float64(last.RSS-base.RSS) / float64(base.RSS)
}

// Soak redeems fresh tokens at a steady rate for the duration and samples
// cloud-app's resident memory every cfg.Every.
func (e *Env) Soak(ctx context.Context, cfg SoakConfig) (SoakReport, error) {
	rep := SoakReport{Config: cfg}
	n := int(math.Ceil(cfg.Rate*cfg.Duration.Seconds())) + 100
	e.logf("soak: preparing %d redemptions (%.0f/s for %s)", n, cfg.Rate, cfg.Duration)
	toks, err := e.Seeder.Tokens(ctx, n)
	if err != nil {
		return rep, err
	}
	bodies, err := redemptionBodies(toks)
	if err != nil {
		return rep, err
	}
	toks = nil
	linksBefore, err := e.Seeder.Count(ctx, "SELECT count(*) FROM links")
	if err != nil {
		return rep, err
	}
	client := newClient(cfg.Workers)
	defer client.CloseIdleConnections()
	url := e.Cloud.BaseURL + protocol.PathRedemptions
	hdr := http.Header{"Content-Type": {"application/json"}}
	var prog Progress

	start := time.Now()
	sample := func() SoakSample {
		s := SoakSample{At: time.Since(start).Round(time.Second), HeapInuse: -1, Goroutines: -1,
			OK: prog.OK.Load(), Errors: prog.Errors.Load()}
		s.RSS, _ = e.Cloud.RSS()
		if m, err := e.Cloud.Metrics(ctx, "go_memstats_heap_inuse_bytes", "go_goroutines"); err == nil {
			if v, ok := m["go_memstats_heap_inuse_bytes"]; ok {
				s.HeapInuse = v
			}
			if v, ok := m["go_goroutines"]; ok {
				s.Goroutines = v
			}
		}
		return s
	}
	rep.Samples = append(rep.Samples, sample())
	done := make(chan struct{})
	sampled := make(chan []SoakSample)
	go func() {
		var out []SoakSample
		t := time.NewTicker(cfg.Every)
		defer t.Stop()
		for {
			select {
			case <-done:
				sampled <- out
				return
			case <-t.C:
				s := sample()
				out = append(out, s)
				e.logf("soak: %s: RSS %.1f MiB, heap %.1f MiB, %v goroutines, %d ok, %d errors",
					s.At, float64(s.RSS)/(1<<20), s.HeapInuse/(1<<20), s.Goroutines, s.OK, s.Errors)
			}
		}
	}()
	before := e.CPU.Snapshot()
	rep.Result = RunOpen(ctx, Open{Rate: cfg.Rate, Workers: cfg.Workers, Duration: cfg.Duration, Max: len(bodies), Progress: &prog},
		func(ctx context.Context, i int) error {
			return send(ctx, client, http.MethodPost, url, bodies[i], hdr, http.StatusCreated)
		})
	rep.CPU = e.CPU.Since(before)
	close(done)
	rep.Samples = append(rep.Samples, <-sampled...)
	rep.Samples = append(rep.Samples, sample())
	if err := e.checkAlive(); err != nil {
		return rep, err
	}
	rep.Baseline, rep.Growth = BaselineAndGrowth(rep.Samples, soakBaseline(cfg.Duration))
	links, err := e.Seeder.Count(ctx, "SELECT count(*) FROM links")
	if err != nil {
		return rep, err
	}
	rep.LinksCreated = links - linksBefore
	return rep, nil
}

// countIn runs a count query against the database at dbURL.
func countIn(ctx context.Context, dbURL, query string) (int64, error) {
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	if err := db.QueryRowContext(ctx, query).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", firstWords(query), err)
	}
	return n, nil
}
