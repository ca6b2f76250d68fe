package load

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Job makes request number i (each i is used once) and returns nil when the
// answer was the expected one.
type Job func(ctx context.Context, i int) error

// hangGuard is how long after a run's window a request still in flight is
// given before it is cancelled: runs always end.
const hangGuard = 30 * time.Second

// Progress counts finished requests while a run is going; a sampler may
// read it concurrently.
type Progress struct {
	OK, Errors atomic.Int64
}

// Result is a finished run.
type Result struct {
	Summary
	// Clients is the number of concurrent clients (workers).
	Clients int
	// Exhausted is true when the run stopped because it used up its
	// requests before its duration.
	Exhausted bool
	// Failures are the distinct errors seen, most frequent first.
	Failures []Failure
}

// Failure is one kind of error and how often it happened.
type Failure struct {
	Message string
	Count   int
}

// Closed describes a closed-loop run: Clients workers, each sending its next
// request as soon as the previous answer arrived, for Duration or until the
// requests First to Max-1 are used up, whichever comes first.
type Closed struct {
	Clients  int
	Duration time.Duration
	First    int
	Max      int
}

// RunClosed runs job as cfg says and measures it.
func RunClosed(ctx context.Context, cfg Closed, job Job) Result {
	clients := max(cfg.Clients, 1)
	var next atomic.Int64
	next.Store(int64(cfg.First))
	var exhausted atomic.Bool
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(hangGuard))
	defer cancel()

	col := newCollector(clients)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				if i >= cfg.Max {
					exhausted.Store(true)
					return
				}
				t0 := time.Now()
				err := job(ctx, i)
				col.record(w, time.Since(t0), err)
			}
		}()
	}
	wg.Wait()
	return col.result(clients, exhausted.Load(), start)
}

// Open describes an open-loop run: request i is due at Rate requests per
// second after the start, and is sent by the first free one of Workers
// workers; the run ends after Duration or when the requests First to Max-1
// are used up. A request's latency counts from when it was due, so a server
// that falls behind shows it in the percentiles.
type Open struct {
	Rate     float64
	Workers  int
	Duration time.Duration
	First    int
	Max      int
	// Progress, if not nil, is updated as requests finish.
	Progress *Progress
}

// RunOpen runs job as cfg says and measures it.
func RunOpen(ctx context.Context, cfg Open, job Job) Result {
	workers := max(cfg.Workers, 1)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	var next atomic.Int64
	var exhausted atomic.Bool
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(hangGuard))
	defer cancel()

	col := newCollector(workers)
	col.progress = cfg.Progress
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := next.Add(1) - 1
				due := start.Add(time.Duration(n) * interval)
				if !due.Before(deadline) {
					return
				}
				i := cfg.First + int(n)
				if i >= cfg.Max {
					exhausted.Store(true)
					return
				}
				if wait := time.Until(due); wait > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
				}
				err := job(ctx, i)
				col.record(w, time.Since(due), err)
			}
		}()
	}
	wg.Wait()
	return col.result(workers, exhausted.Load(), start)
}

// maxFailureKinds bounds the distinct error messages a run keeps.
const maxFailureKinds = 20

// collector gathers per-worker latencies without contention and the errors
// under a lock (errors are rare, or the run is failing anyway).
type collector struct {
	lat      [][]time.Duration
	progress *Progress

	mu       sync.Mutex
	errors   int
	failures map[string]int
	last     time.Time
}

func newCollector(workers int) *collector {
	c := &collector{lat: make([][]time.Duration, workers), failures: map[string]int{}}
	for i := range c.lat {
		c.lat[i] = make([]time.Duration, 0, 1024)
	}
	return c
}

func (c *collector) record(worker int, d time.Duration, err error) {
	now := time.Now()
	if err == nil {
		c.lat[worker] = append(c.lat[worker], d)
		if c.progress != nil {
			c.progress.OK.Add(1)
		}
	} else if c.progress != nil {
		c.progress.Errors.Add(1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.After(c.last) {
		c.last = now
	}
	if err == nil {
		return
	}
	c.errors++
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if _, ok := c.failures[msg]; ok || len(c.failures) < maxFailureKinds {
		c.failures[msg]++
	} else {
		c.failures["(other errors)"]++
	}
}

func (c *collector) result(workers int, exhausted bool, start time.Time) Result {
	var all []time.Duration
	for _, l := range c.lat {
		all = append(all, l...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	elapsed := c.last.Sub(start)
	if c.last.IsZero() {
		elapsed = time.Since(start)
	}
	r := Result{Summary: Summarize(all, c.errors, elapsed), Clients: workers, Exhausted: exhausted}
	for m, n := range c.failures {
		r.Failures = append(r.Failures, Failure{Message: m, Count: n})
	}
	sort.Slice(r.Failures, func(i, j int) bool {
		if r.Failures[i].Count != r.Failures[j].Count {
			return r.Failures[i].Count > r.Failures[j].Count
		}
		return r.Failures[i].Message < r.Failures[j].Message
	})
	return r
}

// describeFailures is a short one-line list of the errors of r.
func describeFailures(r Result) string {
	if len(r.Failures) == 0 {
		return ""
	}
	parts := make([]string, 0, 3)
	for i, f := range r.Failures {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more kinds", len(r.Failures)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%d× %s", f.Count, f.Message))
	}
	return strings.Join(parts, "; ")
}
