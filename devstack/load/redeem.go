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
	// WarmOK and WarmErrors count the warm-up's requests.
	WarmOK, WarmErrors int
}

// RedeemReport is the redemption scenario's result.
type RedeemReport struct {
	Levels []Level
	// LinksCreated and TokensUsed are counted in cloud-app's database after
	// the run: every 201 must have created one link and used one token.
	LinksCreated, TokensUsed int64
	// Statements are the top statements by total time, when
	// pg_stat_statements is loaded.
	Statements []Statement
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
	if e.cfg.Statements {
		if err := e.PG.Exec(ctx, "postgres", "SELECT pg_stat_statements_reset()"); err != nil {
			return rep, err
		}
	}
	url := e.Cloud.BaseURL + protocol.PathRedemptions
	hdr := http.Header{"Content-Type": {"application/json"}}
	prepare := func(n int) ([][]byte, error) {
		toks, err := e.Seeder.Tokens(ctx, n)
		if err != nil {
			return nil, err
		}
		return redemptionBodies(toks)
	}
	for _, clients := range cfg.Clients {
		client := newClient(clients)
		lvl, err := e.runLevel(ctx, "redeem", clients, cfg, prepare, func(bodies [][]byte) Job {
			return func(ctx context.Context, i int) error {
				return send(ctx, client, http.MethodPost, url, bodies[i], hdr, http.StatusCreated)
			}
		})
		client.CloseIdleConnections()
		if err != nil {
			return rep, err
		}
		rep.Levels = append(rep.Levels, lvl)
	}
	var err error
	if rep.LinksCreated, err = e.Seeder.Count(ctx, "SELECT count(*) FROM links"); err != nil {
		return rep, err
	}
	if rep.TokensUsed, err = e.Seeder.Count(ctx, "SELECT count(*) FROM tokens WHERE used_at IS NOT NULL"); err != nil {
		return rep, err
	}
	if e.cfg.Statements {
		if rep.Statements, err = e.topStatements(ctx, "cloudapp", 12); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// runLevel warms up, sizes, prepares and measures one concurrency of a
// scenario whose requests each consume a prepared item (a token).
func (e *Env) runLevel(ctx context.Context, name string, clients int, cfg Levels,
	prepare func(n int) ([][]byte, error), job func(bodies [][]byte) Job) (Level, error) {
	var lvl Level
	// Warm-up: enough requests for the warm-up window at a generous guess
	// of the rate, capped; the rate it reaches sizes the measured run.
	warmN := min(max(clients*40, 400), cfg.Max)
	e.logf("%s: %d clients: warming up (%s, at most %d requests)", name, clients, cfg.Warmup, warmN)
	bodies, err := prepare(warmN)
	if err != nil {
		return lvl, err
	}
	warm := RunClosed(ctx, Closed{Clients: clients, Duration: cfg.Warmup, Max: len(bodies)}, job(bodies))
	if err := e.checkAlive(); err != nil {
		return lvl, err
	}
	need := int(math.Ceil(warm.Rate()*cfg.Duration.Seconds()*1.6)) + 4*clients
	n := min(max(need, 200), cfg.Max)
	e.logf("%s: %d clients: warm-up %.0f/s (%d errors); preparing %d requests", name, clients, warm.Rate(), warm.Errors, n)
	if bodies, err = prepare(n); err != nil {
		return lvl, err
	}
	e.logf("%s: %d clients: measuring for %s", name, clients, cfg.Duration)
	before := e.CPU.Snapshot()
	lvl.Result = RunClosed(ctx, Closed{Clients: clients, Duration: cfg.Duration, Max: len(bodies)}, job(bodies))
	lvl.CPU = e.CPU.Since(before)
	lvl.Prepared = n
	lvl.WarmOK, lvl.WarmErrors = warm.OK, warm.Errors
	if err := e.checkAlive(); err != nil {
		return lvl, err
	}
	e.logf("%s: %d clients: %.0f/s, p50 %s ms, p99 %s ms, %d errors; CPU %s", name, clients, lvl.Rate(),
		ms(lvl.P50), ms(lvl.P99), lvl.Errors, lvl.CPU)
	return lvl, nil
}
