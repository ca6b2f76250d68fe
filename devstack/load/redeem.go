package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"spacesync.io/shared/protocol"
)

// Levels describes a closed-loop scenario run at several concurrencies.
type Levels struct {
	// Clients are the concurrencies, run in order.
	Clients []int
	// Warmup is run before each level, on its own requests, and not
	// measured; it also estimates how many requests the level needs.
	Warmup time.Duration
	// Duration is each level's measured window.
	Duration time.Duration
	// Max bounds the requests of one level (and the tokens seeded for it).
	Max int
}

// Level is one measured concurrency.
type Level struct {
	Result
	// CPU is the CPU use during the measured window.
	CPU CPUUse
	// Prepared is how many requests were prepared (tokens seeded) for it.
	Prepared int
	// WarmOK and WarmErrors count the warm-up's requests, WarmElapsed is
	// how long it ran, and WarmExhausted is set when it ran out of
	// prepared requests before its window ended.
	WarmOK, WarmErrors int
	WarmElapsed        time.Duration
	WarmExhausted      bool
	// Statements are what cloud-app's database ran during the measured
	// window (pg_stat_statements, with -pgss), top statements by time.
	Statements []Statement
}

// profileWindow is how long a profiling run samples.
const profileWindow = 10 * time.Second

// ProfileRun is a run made only to profile a service: after the measured
// levels, at the last level's concurrency, so that perf's sampling does
// not touch the measured numbers.
type ProfileRun struct {
	Clients int
	// Rate is what the service reached while sampled; Requests and OK
	// count the run's requests.
	Rate         float64
	Requests, OK int
	Profile      *Profile
}

// profileRun prepares requests for about profileWindow at rate, and runs
// them at clients while perf samples pid. Without -profile it does
// nothing and returns nil.
func (e *Env) profileRun(ctx context.Context, name, group string, pid, clients int, rate float64, limit int,
	prepare func(n int) ([][]byte, error), job func(bodies [][]byte) Job) (*ProfileRun, error) {
	if !e.cfg.Profile {
		return nil, nil
	}
	n := min(int(math.Ceil(max(rate, 1)*profileWindow.Seconds()*2.5))+4*clients, limit)
	e.logf("%s: profiling %s with perf at %d clients for %s (not measured)", name, group, clients, profileWindow)
	bodies, err := prepare(n)
	if err != nil {
		return nil, err
	}
	pr := startProfile(ctx, e.dir, group, pid, profileWindow)
	r := RunClosed(ctx, Closed{Clients: clients, Duration: profileWindow, Max: len(bodies)}, job(bodies))
	run := &ProfileRun{Clients: clients, Rate: r.Rate(), Requests: r.OK + r.Errors, OK: r.OK, Profile: pr.finish(ctx)}
	if err := e.checkAlive(); err != nil {
		return run, err
	}
	if r.Errors > 0 {
		return run, fmt.Errorf("%s: the profiling run had %d errors: %s", name, r.Errors, describeFailures(r))
	}
	return run, nil
}

// RedeemReport is the redemption scenario's result.
type RedeemReport struct {
	Levels []Level
	// LinksCreated and TokensUsed are counted in cloud-app's database after
	// the run: every 201 must have created one link and used one token.
	LinksCreated, TokensUsed int64
	// Profile is the profiling run, with -profile.
	Profile *ProfileRun
}

// newClient is an HTTP client for loopback load: keep-alive connections
// for every client, no proxy, no compression, no redirects.
func newClient(clients int) *http.Client {
	return &http.Client{
		Timeout: hangGuard,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        2 * clients,
			MaxIdleConnsPerHost: 2 * clients,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// statusError reads a refused answer into an error naming the status and
// the error code (never anything else of the body, which is not echoed).
func statusError(resp *http.Response) error {
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = json.Unmarshal(b, &body)
	if body.Error.Code != "" {
		return fmt.Errorf("HTTP %d %s", resp.StatusCode, body.Error.Code)
	}
	return fmt.Errorf("HTTP %d", resp.StatusCode)
}

// send makes one request and checks its status; the body is read to the
// end so the connection is reused.
func send(ctx context.Context, c *http.Client, method, url string, body []byte, hdr http.Header, want int) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return statusError(resp)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// redemptionBodies builds a redemption request per token, as dc-app sends
// them: its instance, a new link secret, and the expectation from the
// preview (the token's site, space and sync).
func redemptionBodies(toks []SeededToken) ([][]byte, error) {
	out := make([][]byte, len(toks))
	for i, t := range toks {
		b, err := json.Marshal(protocol.RedemptionRequest{
			Token:      t.Token,
			Instance:   protocol.Instance{ID: "loadgen-instance", Name: "Load generator", BaseURL: "http://127.0.0.1:9"},
			Name:       fmt.Sprintf("Load import %d", i),
			LinkSecret: randomID(32),
			Expect:     protocol.Expect{SiteBaseURL: t.Tenant.BaseURL, SpaceID: t.SpaceID, SyncID: t.SyncID},
		})
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// Redeem measures POST /api/v1/redemptions: each request redeems a fresh
// token of a fresh sync, so every request does the whole transaction of
// DESIGN section 5 (and answers 201).
func (e *Env) Redeem(ctx context.Context, cfg Levels) (RedeemReport, error) {
	var rep RedeemReport
	url := e.Cloud.BaseURL + protocol.PathRedemptions
	hdr := http.Header{"Content-Type": {"application/json"}}
	prepare := func(n int) ([][]byte, error) {
		toks, err := e.Seeder.Tokens(ctx, n)
		if err != nil {
			return nil, err
		}
		return redemptionBodies(toks)
	}
	job := func(client *http.Client) func(bodies [][]byte) Job {
		return func(bodies [][]byte) Job {
			return func(ctx context.Context, i int) error {
				return send(ctx, client, http.MethodPost, url, bodies[i], hdr, http.StatusCreated)
			}
		}
	}
	for i, clients := range cfg.Clients {
		client := newClient(clients)
		lvl, err := e.runLevel(ctx, "redeem", clients, cfg, prepare, job(client))
		if err == nil {
			rep.Levels = append(rep.Levels, lvl)
			if i == len(cfg.Clients)-1 {
				rep.Profile, err = e.profileRun(ctx, "redeem", GroupCloudApp, e.Cloud.PID(), clients, lvl.Rate(), cfg.Max, prepare, job(client))
			}
		}
		client.CloseIdleConnections()
		if err != nil {
			return rep, err
		}
	}
	var err error
	if rep.LinksCreated, err = e.Seeder.Count(ctx, "SELECT count(*) FROM links"); err != nil {
		return rep, err
	}
	if rep.TokensUsed, err = e.Seeder.Count(ctx, "SELECT count(*) FROM tokens WHERE used_at IS NOT NULL"); err != nil {
		return rep, err
	}
	return rep, nil
}

// warmRate is a generous guess of a scenario's rate (requests per second
// on this kind of machine), used only to size the warm-up so that it runs
// for its whole window rather than running out of prepared requests.
const warmRate = 1500

// runLevel warms up, sizes, prepares and measures one concurrency of a
// scenario whose requests each consume a prepared item (a token). The
// warm-up uses its own items and is not measured; the measured window
// gets about 2.5 times what the warm-up's rate needs (and at least what
// warmRate needs), so it ends by time, not by running out (the report
// says when it did run out).
func (e *Env) runLevel(ctx context.Context, name string, clients int, cfg Levels,
	prepare func(n int) ([][]byte, error), job func(bodies [][]byte) Job) (Level, error) {
	var lvl Level
	warmN := min(max(int(cfg.Warmup.Seconds()*warmRate), clients*40, 400), cfg.Max)
	e.logf("%s: %d clients: warming up (%s, at most %d requests)", name, clients, cfg.Warmup, warmN)
	bodies, err := prepare(warmN)
	if err != nil {
		return lvl, err
	}
	warm := RunClosed(ctx, Closed{Clients: clients, Duration: cfg.Warmup, Max: len(bodies)}, job(bodies))
	if err := e.checkAlive(); err != nil {
		return lvl, err
	}
	// A short warm-up underestimates (connections are still being
	// made), so the generous guess is a floor: unused tokens cost only
	// their rows.
	need := int(math.Ceil(max(warm.Rate()*2.5, warmRate)*cfg.Duration.Seconds())) + 4*clients
	n := min(need, cfg.Max)
	e.logf("%s: %d clients: warm-up %.0f/s (%d errors); preparing %d requests", name, clients, warm.Rate(), warm.Errors, n)
	if bodies, err = prepare(n); err != nil {
		return lvl, err
	}
	e.logf("%s: %d clients: measuring for %s", name, clients, cfg.Duration)
	var stmtsBefore stmtCounters
	if e.cfg.Statements {
		if stmtsBefore, err = e.statementCounters(ctx, "cloudapp"); err != nil {
			return lvl, fmt.Errorf("pg_stat_statements: %w", err)
		}
	}
	before := e.CPU.Snapshot()
	lvl.Result = RunClosed(ctx, Closed{Clients: clients, Duration: cfg.Duration, Max: len(bodies)}, job(bodies))
	lvl.CPU = e.CPU.Since(before)
	if e.cfg.Statements {
		after, err := e.statementCounters(ctx, "cloudapp")
		if err != nil {
			return lvl, fmt.Errorf("pg_stat_statements: %w", err)
		}
		lvl.Statements = StatementsBetween(stmtsBefore, after, 14)
	}
	lvl.Prepared = n
	lvl.WarmOK, lvl.WarmErrors = warm.OK, warm.Errors
	lvl.WarmElapsed, lvl.WarmExhausted = warm.Elapsed, warm.Exhausted
	if err := e.checkAlive(); err != nil {
		return lvl, err
	}
	e.logf("%s: %d clients: %.0f/s, p50 %s ms, p99 %s ms, %d errors; CPU %s", name, clients, lvl.Rate(),
		ms(lvl.P50), ms(lvl.P99), lvl.Errors, lvl.CPU)
	return lvl, nil
}
