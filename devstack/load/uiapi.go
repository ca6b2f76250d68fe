package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// UIPath is the iframe API route the uiapi scenario measures.
const UIPath = "/api/ui/spaces/%s/syncs"

// UIReport is the uiapi scenario's result.
type UIReport struct {
	// Pending is set, with the reason, when this cloud-app build does not
	// serve the route yet; nothing else is then filled in.
	Pending string
	// User and SpaceKey are who asked and for which space.
	User, SpaceKey string
	// Syncs is how many syncs the space has (seeded); ResponseBytes the
	// size of one answer.
	Syncs, ResponseBytes int
	Levels               []Level
	// ConfluenceCalls is how many REST calls cloud-app made to the
	// Confluence simulator during the warm-ups and measured windows
	// (after the first, uncached request); near zero when the space and
	// the admin decision are cached.
	ConfluenceCalls int
	// Requests is every request sent after the first (warm-ups, measured
	// windows, the profiling run).
	Requests int64
	// Profile is the profiling run, with -profile.
	Profile *ProfileRun
}

// UIConfig is the uiapi scenario's configuration.
type UIConfig struct {
	Levels
	// SpaceKey is the space whose syncs are listed (a space of the
	// simulator's seed that the user administers).
	SpaceKey string
	// Syncs is how many syncs to seed in that space.
	Syncs int
}

// UIAPI measures GET /api/ui/spaces/{key}/syncs on cloud-app with context
// JWTs that the Confluence simulator mints for a site admin (who
// administers every space through the confluence-admins group). The first
// requests make cloud-app ask the simulator whether the user administers
// the space; cloud-app caches that decision, so the measured window is the
// route's own cost. Each client has its own context token.
func (e *Env) UIAPI(ctx context.Context, cfg UIConfig) (UIReport, error) {
	rep := UIReport{SpaceKey: cfg.SpaceKey, Syncs: cfg.Syncs}
	if err := e.InstallSim(ctx); err != nil {
		return rep, err
	}
	seed := e.sim.Seed()
	for _, u := range seed.Users {
		if u.SiteAdmin {
			rep.User = u.AccountID
			break
		}
	}
	var space Space
	for _, s := range seed.Spaces {
		if s.Key == cfg.SpaceKey {
			space = Space{ID: s.ID, Key: s.Key, Name: s.Name}
		}
	}
	if rep.User == "" || space.ID == "" {
		return rep, fmt.Errorf("uiapi: the simulator's seed has no site admin or no space %q", cfg.SpaceKey)
	}
	tenant, err := e.Seeder.UseTenant(ctx, e.sim.ClientKey())
	if err != nil {
		return rep, err
	}
	if _, err := e.Seeder.AddSyncs(ctx, tenant, space, cfg.Syncs); err != nil {
		return rep, err
	}
	target := e.Cloud.BaseURL + fmt.Sprintf(UIPath, url.PathEscape(space.Key))

	// Is the route there? Without credentials a served route says 401; an
	// unknown one 404.
	probe := newClient(1)
	resp, err := probe.Get(target)
	if err != nil {
		return rep, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		rep.Pending = fmt.Sprintf("this cloud-app build answers GET %s with %d: the route is not served yet", fmt.Sprintf(UIPath, "{key}"), resp.StatusCode)
		return rep, nil
	}
	tok, err := e.sim.ContextToken(rep.User)
	if err != nil {
		return rep, err
	}
	if rep.ResponseBytes, err = checkUIAnswer(ctx, probe, target, tok); err != nil {
		return rep, err
	}

	e.sim.ResetRequests()
	for li, clients := range cfg.Clients {
		client := newClient(clients)
		hdrs := make([]http.Header, clients)
		for i := range hdrs {
			t, err := e.sim.ContextToken(rep.User)
			if err != nil {
				return rep, err
			}
			hdrs[i] = http.Header{"Authorization": {"JWT " + t}, "Accept": {"application/json"}}
		}
		// Requests consume nothing, so there is no need to size them:
		// every window may use up to Max; the request index picks a
		// client's token round-robin.
		prepare := func(int) ([][]byte, error) { return make([][]byte, cfg.Max), nil }
		job := func([][]byte) Job {
			return func(ctx context.Context, i int) error {
				return send(ctx, client, http.MethodGet, target, nil, hdrs[i%clients], http.StatusOK)
			}
		}
		lvl, err := e.runLevel(ctx, "uiapi", clients, cfg.Levels, prepare, job)
		if err == nil {
			rep.Levels = append(rep.Levels, lvl)
			if li == len(cfg.Clients)-1 {
				rep.Profile, err = e.profileRun(ctx, "uiapi", GroupCloudApp, e.Cloud.PID(), clients, lvl.Rate(), cfg.Max, prepare, job)
			}
		}
		client.CloseIdleConnections()
		if err != nil {
			return rep, err
		}
	}
	for _, l := range rep.Levels {
		rep.Requests += int64(l.WarmOK + l.WarmErrors + l.OK + l.Errors)
	}
	if rep.Profile != nil {
		rep.Requests += int64(rep.Profile.Requests)
	}
	rep.ConfluenceCalls = len(e.sim.Requests())
	return rep, nil
}

// checkUIAnswer makes one authenticated request and checks that it is a
// 200 with a JSON body; it returns the body's size.
func checkUIAnswer(ctx context.Context, c *http.Client, target, tok string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	req.Header.Set("Authorization", "JWT "+tok)
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("uiapi: the first authenticated request: %w", statusError(resp))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err
	}
	if !json.Valid(b) {
		return 0, fmt.Errorf("uiapi: the answer is not JSON")
	}
	return len(b), nil
}
