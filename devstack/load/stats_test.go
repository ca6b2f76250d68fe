package load

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond // 1..100 ms
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", durations(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		// Nearest rank: ceil(0.5*4) = 2nd value, not an interpolation.
		{"p50 of four", durations(10, 20, 30, 40), 50, 20 * time.Millisecond},
		{"p99 of four is the max", durations(10, 20, 30, 40), 99, 40 * time.Millisecond},
		{"p1 of four is the min", durations(10, 20, 30, 40), 1, 10 * time.Millisecond},
		{"p0 clamps to the min", durations(10, 20, 30, 40), 0, 10 * time.Millisecond},
		{"p above 100 clamps to the max", durations(10, 20, 30, 40), 150, 40 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		lat := durations(40, 10, 30, 20) // unsorted on purpose
		s := Summarize(lat, 3, 2*time.Second)
		want := Summary{OK: 4, Errors: 3, Elapsed: 2 * time.Second,
			P50: 20 * time.Millisecond, P90: 40 * time.Millisecond, P99: 40 * time.Millisecond,
			Max: 40 * time.Millisecond, Mean: 25 * time.Millisecond}
		if s != want {
			t.Errorf("Summarize = %+v, want %+v", s, want)
		}
		if got := s.Rate(); got != 2 {
			t.Errorf("Rate = %v, want 2 (4 ok in 2 s; errors do not count)", got)
		}
	})
	t.Run("NoSuccess", func(t *testing.T) {
		s := Summarize(nil, 5, time.Second)
		if s.OK != 0 || s.Errors != 5 || s.P99 != 0 || s.Max != 0 || s.Rate() != 0 {
			t.Errorf("Summarize(nil, 5) = %+v, want only the errors", s)
		}
	})
	t.Run("NoWindow", func(t *testing.T) {
		if got := Summarize(durations(1), 0, 0).Rate(); got != 0 {
			t.Errorf("Rate with no elapsed time = %v, want 0", got)
		}
	})
}

func TestRunClosed(t *testing.T) {
	t.Run("OK_StopsWhenRequestsRunOut", func(t *testing.T) {
		var seen [50]atomic.Int32
		r := RunClosed(context.Background(), Closed{Clients: 4, Duration: time.Minute, First: 10, Max: 50},
			func(_ context.Context, i int) error { seen[i].Add(1); return nil })
		if r.OK != 40 || r.Errors != 0 || !r.Exhausted || r.Clients != 4 {
			t.Errorf("got %d ok, %d errors, exhausted %v, %d clients; want 40, 0, true, 4", r.OK, r.Errors, r.Exhausted, r.Clients)
		}
		for i := range seen {
			want := int32(0)
			if i >= 10 {
				want = 1
			}
			if got := seen[i].Load(); got != want {
				t.Fatalf("request %d made %d times, want %d", i, got, want)
			}
		}
	})
	t.Run("ErrorsCountedAndGrouped", func(t *testing.T) {
		r := RunClosed(context.Background(), Closed{Clients: 2, Duration: time.Minute, Max: 30},
			func(_ context.Context, i int) error {
				switch {
				case i%3 == 0:
					return errors.New("HTTP 409 token_used")
				case i%5 == 0:
					return errors.New("HTTP 500 internal")
				}
				return nil
			})
		// 0..29: multiples of 3 → 10; multiples of 5 but not 3 → 5, 10, 20, 25 → 4.
		if r.OK != 16 || r.Errors != 14 {
			t.Fatalf("got %d ok, %d errors; want 16 ok, 14 errors", r.OK, r.Errors)
		}
		want := []Failure{{"HTTP 409 token_used", 10}, {"HTTP 500 internal", 4}}
		if len(r.Failures) != 2 || r.Failures[0] != want[0] || r.Failures[1] != want[1] {
			t.Errorf("Failures = %v, want %v", r.Failures, want)
		}
	})
	t.Run("OK_StopsAtTheDuration", func(t *testing.T) {
		start := time.Now()
		r := RunClosed(context.Background(), Closed{Clients: 2, Duration: 50 * time.Millisecond, Max: 1 << 30},
			func(ctx context.Context, _ int) error { time.Sleep(time.Millisecond); return nil })
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("a 50 ms run took %v", took)
		}
		if r.Exhausted || r.OK == 0 {
			t.Errorf("got exhausted %v with %d ok; want a run ended by time with some requests", r.Exhausted, r.OK)
		}
	})
}

func TestRunOpen(t *testing.T) {
	var prog Progress
	r := RunOpen(context.Background(), Open{Rate: 1000, Workers: 4, Duration: 100 * time.Millisecond, Max: 1 << 20, Progress: &prog},
		func(context.Context, int) error { return nil })
	// 100 ms at 1,000/s is 100 requests due; allow for a slow machine.
	if r.OK < 50 || r.OK > 100 {
		t.Errorf("RunOpen at 1000/s for 100 ms made %d requests, want about 100 (at most 100)", r.OK)
	}
	if got := prog.OK.Load(); got != int64(r.OK) {
		t.Errorf("Progress.OK = %d, want %d", got, r.OK)
	}
	short := RunOpen(context.Background(), Open{Rate: 1000, Workers: 4, Duration: time.Minute, Max: 20},
		func(context.Context, int) error { return nil })
	if short.OK != 20 || !short.Exhausted {
		t.Errorf("RunOpen with 20 requests: %d ok, exhausted %v; want 20, true", short.OK, short.Exhausted)
	}
}

func TestBaselineAndGrowth(t *testing.T) {
	mib := int64(1 << 20)
	samples := []SoakSample{
		{At: 0, RSS: 20 * mib},
		{At: 30 * time.Second, RSS: 40 * mib},
		{At: 60 * time.Second, RSS: 50 * mib},
		{At: 120 * time.Second, RSS: 52 * mib},
		{At: 300 * time.Second, RSS: 55 * mib},
	}
	base, g := BaselineAndGrowth(samples, time.Minute)
	if base.At != time.Minute || math.Abs(g-0.10) > 1e-9 {
		t.Errorf("baseline at %v, growth %v; want the 60 s sample and +10%%", base.At, g)
	}
	base, g = BaselineAndGrowth(samples, 30*time.Second)
	if base.At != 30*time.Second || math.Abs(g-0.375) > 1e-9 {
		t.Errorf("baseline at %v, growth %v; want the 30 s sample and +37.5%%", base.At, g)
	}
	if _, g := BaselineAndGrowth(nil, time.Minute); !math.IsNaN(g) {
		t.Errorf("growth of no samples = %v, want NaN", g)
	}
	if _, g := BaselineAndGrowth([]SoakSample{{RSS: 0}, {At: time.Minute, RSS: mib}}, 0); !math.IsNaN(g) {
		t.Errorf("growth from an unreadable RSS = %v, want NaN", g)
	}
	if got := soakBaseline(5 * time.Minute); got != time.Minute {
		t.Errorf("soakBaseline(5m) = %v, want 1m", got)
	}
	if got := soakBaseline(time.Minute); got != 12*time.Second {
		t.Errorf("soakBaseline(1m) = %v, want 12s", got)
	}
}

func TestNewUUID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		u := newUUID()
		// 8-4-4-4-12 hex digits, version 4, the RFC 4122 variant.
		if len(u) != 36 || u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-' || u[14] != '4' || !strings.ContainsRune("89ab", rune(u[19])) {
			t.Fatalf("newUUID() = %q, want a version 4 UUID", u)
		}
		if seen[u] {
			t.Fatalf("newUUID() repeated %q", u)
		}
		seen[u] = true
	}
}
