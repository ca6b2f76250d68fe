package web

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"spacesync.io/cloud-app/internal/store"
	"spacesync.io/cloud-app/internal/store/migrations"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/db"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/protocol"
)

// v1Outcomes tallies concurrent redemption answers.
type v1Outcomes struct {
	mu      sync.Mutex
	created []protocol.Link
	replays []protocol.Link
	used    int
	revoked int
	other   []string
}

func (o *v1Outcomes) add(tb testing.TB, r v1Response) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case r.Code == http.StatusCreated:
		o.created = append(o.created, v1Link(tb, r))
	case r.Code == http.StatusOK:
		o.replays = append(o.replays, v1Link(tb, r))
	case r.Code == http.StatusConflict && r.ErrCode() == apperr.TokenUsed:
		o.used++
	case r.Code == http.StatusGone && r.ErrCode() == apperr.TokenRevoked:
		o.revoked++ // superseded: another token of the sync won and committed first
	default:
		o.other = append(o.other, r.String())
	}
}

// check asserts exactly one 201, that every 200 is the same link, and that
// nothing else (no 5xx, no other code) was answered. A 410 token_revoked
// (superseded) is expected only when several tokens compete.
func (o *v1Outcomes) check(tb testing.TB, e *v1Env, syncID string, n int, severalTokens bool) protocol.Link {
	tb.Helper()
	if len(o.other) > 0 {
		tb.Fatalf("%d unexpected answers, e.g. %s", len(o.other), o.other[0])
	}
	if o.revoked > 0 && !severalTokens {
		tb.Fatalf("%d answers were token_revoked with a single token", o.revoked)
	}
	if len(o.created) != 1 {
		tb.Fatalf("%d answers were 201; want exactly 1", len(o.created))
	}
	winner := o.created[0]
	for _, l := range o.replays {
		if l.ID != winner.ID {
			tb.Errorf("a 200 answered link %s; the 201 was %s", l.ID, winner.ID)
		}
	}
	if got := 1 + len(o.replays) + o.used + o.revoked; got != n {
		tb.Errorf("%d answers; want %d", got, n)
	}
	if c := e.count(`SELECT COUNT(*) FROM links WHERE sync_id = ?`, syncID); c != 1 {
		tb.Errorf("%d link rows; want 1", c)
	}
	if c := e.count(`SELECT COUNT(*) FROM tokens WHERE sync_id = ? AND used_at IS NOT NULL`, syncID); c != 1 {
		tb.Errorf("%d used tokens; want 1", c)
	}
	tb.Logf("%d concurrent redemptions: 1 created, %d exact replays (200), %d token_used (409), %d superseded (410)",
		n, len(o.replays), o.used, o.revoked)
	return winner
}

// TestAPIV1_Redeem_Concurrent redeems through the HTTP handler from many
// goroutines at once, on Postgres and on SQLite.
func TestAPIV1_Redeem_Concurrent(t *testing.T) {
	const n = 200
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		e := newV1Env(t, d, nil)

		t.Run("OneToken", func(t *testing.T) {
			tenant := e.tenant("race-one")
			s := e.sync(tenant, "ENG")
			tok, _ := e.mint(tenant, s, true)
			// Half the requests are the same dc-app retrying (same instance,
			// same link secret: an exact replay may answer 200); the other
			// half are other holders of the file, each with its own secret.
			shared := e.newLinkSecret()
			reqs := make([]protocol.RedemptionRequest, n)
			for i := range reqs {
				if i%2 == 0 {
					reqs[i] = v1Redemption(tok, tenant, s, "inst-retry", shared)
				} else {
					reqs[i] = v1Redemption(tok, tenant, s, "inst-"+strconv.Itoa(i), e.newLinkSecret())
				}
			}
			var o v1Outcomes
			v1Concurrently(n, func(i int) { o.add(t, e.redeem(reqs[i])) })
			winner := o.check(t, e, s.ID, n, false)
			// Every retry by the winning dc-app is an exact replay (200), even
			// one that raced the first attempt; nobody else gets the link.
			var inst string
			if err := e.db.Raw(`SELECT instance_id FROM links WHERE id = ?`, winner.ID).Scan(&inst).Error; err != nil {
				t.Fatal(err)
			}
			wantReplays := 0
			if inst == "inst-retry" {
				wantReplays = n/2 - 1
			}
			if len(o.replays) != wantReplays {
				t.Errorf("winner %s: %d exact replays; want %d", inst, len(o.replays), wantReplays)
			}
			if got, _ := e.app.store.GetSync(e.ctx, tenant.ID, s.ID); got.Status != store.SyncSynced {
				t.Errorf("sync status %q", got.Status)
			}
		})

		t.Run("OneToken_SameDCApp", func(t *testing.T) {
			// One dc-app retrying the same redemption many times at once:
			// one 201, and every other attempt is an exact replay (200),
			// including those that raced the winner's transaction.
			tenant := e.tenant("race-same")
			s := e.sync(tenant, "ENG")
			tok, _ := e.mint(tenant, s, true)
			req := v1Redemption(tok, tenant, s, "inst-retry", e.newLinkSecret())
			var o v1Outcomes
			v1Concurrently(n, func(int) { o.add(t, e.redeem(req)) })
			o.check(t, e, s.ID, n, false)
			if len(o.replays) != n-1 {
				t.Errorf("%d exact replays; want %d", len(o.replays), n-1)
			}
		})

		t.Run("ManyTokensOfOneSync", func(t *testing.T) {
			const tokensN = 20
			tenant := e.tenant("race-many")
			s := e.sync(tenant, "ENG")
			type tokSecret struct{ tok, secret string }
			toks := make([]tokSecret, tokensN)
			for i := range toks {
				tok, _ := e.mint(tenant, s, true)
				toks[i] = tokSecret{tok, e.newLinkSecret()}
			}
			var o v1Outcomes
			v1Concurrently(n, func(i int) {
				ts := toks[i%tokensN]
				o.add(t, e.redeem(v1Redemption(ts.tok, tenant, s, fmt.Sprintf("inst-%d", i%tokensN), ts.secret)))
			})
			o.check(t, e, s.ID, n, true)
			// Every other token of the sync was superseded.
			if c := e.count(`SELECT COUNT(*) FROM tokens WHERE sync_id = ? AND revoke_reason = ?`, s.ID, store.RevokeSuperseded); c != tokensN-1 {
				t.Errorf("%d superseded tokens; want %d", c, tokensN-1)
			}
		})

		t.Run("TwoTokensOfOneSync", func(t *testing.T) {
			tenant := e.tenant("race-two")
			s := e.sync(tenant, "ENG")
			a, _ := e.mint(tenant, s, true)
			b, _ := e.mint(tenant, s, true)
			ra := v1Redemption(a, tenant, s, "inst-a", e.newLinkSecret())
			rb := v1Redemption(b, tenant, s, "inst-b", e.newLinkSecret())
			var o v1Outcomes
			v1Concurrently(2, func(i int) {
				if i == 0 {
					o.add(t, e.redeem(ra))
				} else {
					o.add(t, e.redeem(rb))
				}
			})
			o.check(t, e, s.ID, 2, true)
		})
	})
}

// v1Concurrently runs fn(0..n-1) on n goroutines released at once.
func v1Concurrently(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

func TestAPIV1_RateLimit(t *testing.T) {
	dbtest.Each(t, migrations.FS, func(t *testing.T, d *db.DB) {
		t.Run("ErrTooManyFailures", func(t *testing.T) {
			e := newV1Env(t, d, nil)
			tenant := e.tenant("rl")
			s := e.sync(tenant, "ENG")
			tok, _ := e.mint(tenant, s, true)
			const ip = "198.51.100.7:5000"
			// Successful calls are not limited and do not count.
			for i := range 40 {
				r := e.do(v1Request{Method: http.MethodPost, Path: protocol.PathPreviews, Body: protocol.PreviewRequest{Token: tok}, RemoteAddr: ip})
				if r.Code != 200 {
					t.Fatalf("successful preview %d: %s", i, r)
				}
			}
			bad := v1Redemption("garbage", tenant, s, "inst", e.newLinkSecret())
			for i := range apiV1FailureLimit {
				r := e.do(v1Request{Method: http.MethodPost, Path: protocol.PathRedemptions, Body: bad, RemoteAddr: ip,
					Header: map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i)}})
				if r.Code != 400 {
					t.Fatalf("failure %d: %s; want 400", i+1, r)
				}
			}
			// The 31st: limited, whatever X-Forwarded-For claims (no
			// trusted proxies are configured).
			for _, xff := range []string{"", "203.0.113.200", "127.0.0.1"} {
				r := e.do(v1Request{Method: http.MethodPost, Path: protocol.PathRedemptions, Body: bad, RemoteAddr: ip,
					Header: map[string]string{"X-Forwarded-For": xff, "X-Real-IP": xff}})
				if r.Code != 429 || r.ErrCode() != apperr.RateLimited {
					t.Fatalf("after %d failures (XFF %q): %s; want 429 rate_limited", apiV1FailureLimit, xff, r)
				}
				if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
					t.Errorf("Retry-After = %q; want 1..60 seconds", r.Header.Get("Retry-After"))
				}
			}
			// While limited, previews from that address are refused too...
			r := e.do(v1Request{Method: http.MethodPost, Path: protocol.PathPreviews, Body: protocol.PreviewRequest{Token: tok}, RemoteAddr: ip})
			if r.Code != 429 {
				t.Errorf("preview while limited: %s; want 429", r)
			}
			// ...but another address is not limited,...
			r = e.do(v1Request{Method: http.MethodPost, Path: protocol.PathRedemptions, Body: bad, RemoteAddr: "198.51.100.8:5000"})
			if r.Code != 400 {
				t.Errorf("another address: %s; want 400", r)
			}
			// ...nor are the link endpoints.
			if r := e.do(v1Request{Method: http.MethodGet, Path: protocol.PathLinkSelf, RemoteAddr: ip}); r.Code != 401 {
				t.Errorf("links/self while limited: %s; want 401", r)
			}
			// The window ends.
			e.clock.Add(apiV1FailureWindow)
			r = e.do(v1Request{Method: http.MethodPost, Path: protocol.PathPreviews, Body: protocol.PreviewRequest{Token: tok}, RemoteAddr: ip})
			if r.Code != 200 {
				t.Errorf("after the window: %s; want 200", r)
			}
		})
		t.Run("OK_TrustedProxy", func(t *testing.T) {
			// With the proxy trusted, X-Forwarded-For names the client, and
			// different clients behind it have their own windows.
			e := newV1Env(t, d, map[string]string{"CLOUD_APP_TRUSTED_PROXIES": "198.51.100.0/24"})
			for i := range apiV1FailureLimit + 5 {
				r := e.do(v1Request{Method: http.MethodPost, Path: protocol.PathPreviews, Body: protocol.PreviewRequest{Token: "garbage"},
					RemoteAddr: "198.51.100.7:5000", Header: map[string]string{"X-Forwarded-For": fmt.Sprintf("203.0.113.%d", i)}})
				if r.Code != 400 {
					t.Fatalf("client %d behind the proxy: %s; want 400", i, r)
				}
			}
			// And one client behind it is limited like any other.
			var last v1Response
			for range apiV1FailureLimit + 1 {
				last = e.do(v1Request{Method: http.MethodPost, Path: protocol.PathPreviews, Body: protocol.PreviewRequest{Token: "garbage"},
					RemoteAddr: "198.51.100.7:5000", Header: map[string]string{"X-Forwarded-For": "203.0.113.250"}})
			}
			if last.Code != 429 {
				t.Errorf("one client behind the proxy after %d failures: %s; want 429", apiV1FailureLimit+1, last)
			}
		})
	})
}

func TestFailureWindow(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	w := newFailureWindow(3, time.Minute, func() time.Time { return now })
	for range 3 {
		if _, b := w.blocked("a"); b {
			t.Fatal("blocked before the limit")
		}
		w.fail("a")
	}
	if ra, b := w.blocked("a"); !b || ra != 60 {
		t.Errorf("blocked = %v, retry %d; want true, 60", b, ra)
	}
	if _, b := w.blocked("b"); b {
		t.Error("another address is blocked")
	}
	now = now.Add(59*time.Second + time.Millisecond)
	if ra, b := w.blocked("a"); !b || ra != 1 {
		t.Errorf("near the end: blocked = %v, retry %d; want true, 1", b, ra)
	}
	now = now.Add(time.Second)
	if _, b := w.blocked("a"); b {
		t.Error("still blocked after the window")
	}
	w.fail("a")
	if _, b := w.blocked("a"); b {
		t.Error("a new window starts counting from zero")
	}
}
