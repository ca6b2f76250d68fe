// Package load is the load driver behind devstack/cmd/loadgen: it starts a
// throwaway Postgres cluster and the real service binaries, seeds the data a
// scenario needs directly in Postgres, drives bounded load over loopback
// HTTP, and reports throughput, latency percentiles, errors, CPU use and
// memory as markdown.
//
// Everything it talks to is on 127.0.0.1 (or localhost), every run is bounded
// by a request count and a duration, and it stops by itself.
package load

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Summary is what a run of requests measured.
type Summary struct {
	// OK is the number of requests that got the expected answer, Errors
	// the number that did not (a wrong status or a transport failure).
	OK, Errors int
	// Elapsed is the wall time of the measured window.
	Elapsed time.Duration
	// P50, P90, P99 and Max are latencies of the successful requests,
	// nearest-rank percentiles; all zero when OK is zero.
	P50, P90, P99, Max time.Duration
	// Mean is the mean latency of the successful requests.
	Mean time.Duration
}

// Rate is successful requests per second over the elapsed window.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.OK) / s.Elapsed.Seconds()
}

// Summarize computes a Summary from the latencies of the successful
// requests, the error count and the window. It sorts lat in place.
func Summarize(lat []time.Duration, errors int, elapsed time.Duration) Summary {
	slices.Sort(lat)
	s := Summary{OK: len(lat), Errors: errors, Elapsed: elapsed}
	if len(lat) == 0 {
		return s
	}
	var total time.Duration
	for _, d := range lat {
		total += d
	}
	s.Mean = total / time.Duration(len(lat))
	s.P50 = Percentile(lat, 50)
	s.P90 = Percentile(lat, 90)
	s.P99 = Percentile(lat, 99)
	s.Max = lat[len(lat)-1]
	return s
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value such that at least p percent of
// the values are less than or equal to it. It returns 0 for an empty slice;
// p outside (0, 100] is clamped.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// ms formats a duration as milliseconds with a precision that suits it.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
