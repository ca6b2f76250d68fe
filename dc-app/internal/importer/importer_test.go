package importer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"spacesync.io/dc-app/internal/cloud"
	"spacesync.io/dc-app/internal/cloudtest"
	"spacesync.io/dc-app/internal/store"
	"spacesync.io/dc-app/internal/store/migrations"
	"spacesync.io/shared/apperr"
	"spacesync.io/shared/dbtest"
	"spacesync.io/shared/protocol"
	"spacesync.io/shared/secret"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

type fixture struct {
	svc   *Service
	store *store.Store
	fake  *cloudtest.Fake
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	fake := cloudtest.New(t)
	st := store.New(dbtest.SQLite(t, migrations.FS), nil, secret.NewKey())
	id, err := st.InstanceID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(fake.URL)
	base, _ := url.Parse("http://127.0.0.1:8082")
	cfg := Config{TrustedCloudURLs: []*url.URL{u}, InstanceID: id, BaseURL: base, Retry: RetryPolicy{Base: time.Millisecond}}
	if mod != nil {
		mod(&cfg)
	}
	svc := New(st, cloud.New(cloud.Options{Timeout: 5 * time.Second}), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return &fixture{svc: svc, store: st, fake: fake}
}

// lostImport imports a token whose redemption answer is lost, leaving a
// PENDING row whose link Cloud holds.
func (f *fixture) lostImport(t *testing.T) store.SyncedSpace {
	t.Helper()
	f.fake.DropRedemptionAnswers(1)
	res, err := f.svc.Import(context.Background(), Request{Token: []byte(f.fake.Mint(t, cloudtest.MintOptions{})), Name: "n", Actor: "admin"})
	if err != nil || !res.Pending {
		t.Fatalf("import with a lost answer: %+v %v", res, err)
	}
	time.Sleep(5 * time.Millisecond) // past the retry's first backoff
	return res.Space
}

func unlinkOnCloud(t *testing.T, f *fixture, id string) {
	t.Helper()
	secretVal, err := f.store.LinkSecret(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, f.fake.URL+protocol.PathLinkSelf, nil)
	req.Header.Set("Authorization", "Bearer "+secretVal)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("unlink on Cloud: %v %v", resp, err)
	}
}

// TestRetry_DefiniteRefusalFails: after an unknown outcome, a definite
// refusal marks the row FAILED with Cloud's reason (it is not deleted, so
// the admin sees it), and removing it then ends any link with the secret.
func TestRetry_DefiniteRefusalFails(t *testing.T) {
	f := newFixture(t, nil)
	sp := f.lostImport(t)
	unlinkOnCloud(t, f, sp.ID) // the replay rule no longer applies: token_used
	n, err := f.svc.RetryDue(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("RetryDue = %d, %v", n, err)
	}
	got, _ := f.store.Get(context.Background(), sp.ID)
	if got.Status != store.StatusFailed || got.StatusReason == "" {
		t.Fatalf("after a refused retry: %s %q", got.Status, got.StatusReason)
	}
	if err := f.svc.Remove(context.Background(), sp.ID, "admin"); err != nil {
		t.Fatalf("remove a FAILED row: %v", err)
	}
	if _, err := f.store.Get(context.Background(), sp.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("row after removal: %v", err)
	}
}

func TestRetry_KeepsPendingWhileUnreachable(t *testing.T) {
	f := newFixture(t, nil)
	sp := f.lostImport(t)
	f.fake.Close()
	if n, _ := f.svc.RetryDue(context.Background()); n != 1 {
		t.Fatalf("attempted %d", n)
	}
	got, _ := f.store.Get(context.Background(), sp.ID)
	if got.Status != store.StatusPending || got.Attempts != 2 || got.NextAttemptAt.IsZero() {
		t.Errorf("after an unreachable retry: %s, attempt %d, next %v", got.Status, got.Attempts, got.NextAttemptAt)
	}
	// Removal cannot settle it either, and keeps it.
	err := f.svc.Remove(context.Background(), sp.ID, "admin")
	if apperr.CodeOf(err) != apperr.CloudUnreachable {
		t.Errorf("remove while unreachable: %v", err)
	}
	if got, _ := f.store.Get(context.Background(), sp.ID); got.Status != store.StatusPending {
		t.Errorf("row after a failed removal: %s", got.Status)
	}
}

func TestRetry_GivesUpLongAfterExpiry(t *testing.T) {
	later := time.Now().Add(9 * 24 * time.Hour)
	f := newFixture(t, nil)
	sp := f.lostImport(t)
	f.fake.Close()
	f.svc.cfg.Now = func() time.Time { return later }
	f.svc.RetryDue(context.Background())
	got, _ := f.store.Get(context.Background(), sp.ID)
	if got.Status != store.StatusFailed {
		t.Errorf("a pending import 2 days past its token's expiry: %s", got.Status)
	}
}

func TestRetry_UntrustedCloudIsNeverCalled(t *testing.T) {
	f := newFixture(t, nil)
	sp := f.lostImport(t)
	calls := f.fake.TotalCalls()
	f.svc.cfg.TrustedCloudURLs = nil // the admin stopped trusting it
	f.svc.RetryDue(context.Background())
	got, _ := f.store.Get(context.Background(), sp.ID)
	if got.Status != store.StatusFailed || f.fake.TotalCalls() != calls {
		t.Errorf("untrusted cloud at retry: %s, %d calls", got.Status, f.fake.TotalCalls()-calls)
	}
}

func TestRunRetrier_StartsAtOnceAndStops(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Retry.Every = time.Hour })
	sp := f.lostImport(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.RunRetrier(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := f.store.Get(context.Background(), sp.ID)
		if got.Status == store.StatusLinked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the start-up pass did not settle the pending import")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunRetrier did not stop")
	}
	if f.fake.Redeemed() != 1 || len(f.fake.ActiveLinks()) != 1 {
		t.Errorf("Cloud: %d created, %d links", f.fake.Redeemed(), len(f.fake.ActiveLinks()))
	}
}

func TestNextAttempt_Backoff(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := &Service{cfg: Config{Now: func() time.Time { return now }, Retry: RetryPolicy{Base: 10 * time.Second, Max: time.Minute}}}
	for attempt, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 4: time.Minute, 30: time.Minute} {
		d := s.nextAttempt(attempt).Sub(now)
		if d > want || d < want*4/5 {
			t.Errorf("attempt %d waits %v, want %v less up to a fifth", attempt, d, want)
		}
	}
}

func TestParsePermissions(t *testing.T) {
	got := ParsePermissions("group:confluence-administrators\n jsmith , user: Ana ;\n\n")
	want := []store.Principal{{Type: "group", Name: "confluence-administrators"}, {Type: "user", Name: "jsmith"}, {Type: "user", Name: "Ana"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, _, err := validate(Request{Name: "n", Permissions: []store.Principal{{Type: "robot", Name: "x"}}}); apperr.CodeOf(err) != apperr.ValidationFailed {
		t.Errorf("robot permission accepted: %v", err)
	}
	if _, p, err := validate(Request{Name: "n", Permissions: want}); err != nil || len(p) != 3 || p[0].ID != "confluence-administrators" {
		t.Errorf("valid permissions: %+v %v", p, err)
	}
}
