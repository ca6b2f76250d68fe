package spaces

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"spacesync.io/cloud-app/internal/connect"
	"spacesync.io/cloud-app/internal/store"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// loader counts its loads; each load waits for release (if set) and
// returns the spaces named by the current generation.
type loader struct {
	calls   atomic.Int64
	gen     atomic.Int64
	release chan struct{}
	fail    atomic.Bool
}

func (l *loader) load(ctx context.Context, t *store.Tenant) ([]connect.Space, error) {
	l.calls.Add(1)
	if l.release != nil {
		select {
		case <-l.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if l.fail.Load() {
		return nil, errors.New("confluence is down")
	}
	g := l.gen.Load()
	return []connect.Space{
		{ID: "1", Key: "ENG", Name: fmt.Sprintf("Engineering %d", g)},
		{ID: "2", Key: "DOCS", Name: "documentation"},
		{ID: "3", Key: "AAA", Name: "Documentation"},
	}, nil
}

func tenant(id string) *store.Tenant { return &store.Tenant{ID: id} }

func keys(s *Snapshot) []string {
	var out []string
	for i := range s.Len() {
		out = append(out, s.At(i).Key)
	}
	return out
}

func TestIndex_Get_SingleFlight(t *testing.T) {
	l := &loader{release: make(chan struct{})}
	ix := New(Config{Load: l.load})
	var wg sync.WaitGroup
	snaps := make([]*Snapshot, 20)
	for i := range snaps {
		wg.Go(func() {
			s, err := ix.Get(context.Background(), tenant("t1"))
			if err != nil {
				t.Error(err)
			}
			snaps[i] = s
		})
	}
	time.Sleep(50 * time.Millisecond) // let every caller wait on the load
	close(l.release)
	wg.Wait()
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("%d loads for 20 concurrent callers, want 1", n)
	}
	for _, s := range snaps {
		if s != snaps[0] {
			t.Fatalf("callers got different snapshots")
		}
	}
	// The twin: another tenant has its own load.
	if _, err := ix.Get(context.Background(), tenant("t2")); err != nil || l.calls.Load() != 2 {
		t.Fatalf("second tenant: %v, %d loads", err, l.calls.Load())
	}
}

func TestIndex_Get_TTL(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	l := &loader{}
	ix := New(Config{Load: l.load, TTL: time.Minute, Now: c.Now})
	ctx := context.Background()
	first, _ := ix.Get(ctx, tenant("t"))
	c.Add(59 * time.Second)
	if s, _ := ix.Get(ctx, tenant("t")); s != first || l.calls.Load() != 1 {
		t.Fatalf("fresh list reloaded (%d loads)", l.calls.Load())
	}
	// Past the TTL the old list is served at once and a refresh runs.
	l.gen.Store(1)
	c.Add(2 * time.Second)
	if s, _ := ix.Get(ctx, tenant("t")); s != first {
		t.Fatalf("a stale Get did not return the old list at once")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, _ := ix.Get(ctx, tenant("t"))
		if s != first {
			if eng, _ := s.ByKey("ENG"); eng.Name != "Engineering 1" {
				t.Fatalf("refreshed list: %v", keys(s))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the list was never refreshed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := l.calls.Load(); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}

func TestIndex_Get_ErrLoad(t *testing.T) {
	l := &loader{}
	l.fail.Store(true)
	ix := New(Config{Load: l.load})
	if _, err := ix.Get(context.Background(), tenant("t")); err == nil {
		t.Fatal("a failed load returned a list")
	}
	// A failure is not kept: the next Get loads again, and succeeds.
	l.fail.Store(false)
	s, err := ix.Get(context.Background(), tenant("t"))
	if err != nil || s.Len() != 3 || l.calls.Load() != 2 {
		t.Fatalf("after recovery: %v, %d loads", err, l.calls.Load())
	}
	if _, err := ix.Get(context.Background(), nil); err == nil {
		t.Error("Get without a tenant")
	}
}

func TestIndex_Get_ContextDone(t *testing.T) {
	l := &loader{release: make(chan struct{})}
	ix := New(Config{Load: l.load})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := ix.Get(ctx, tenant("t")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the caller's deadline", err)
	}
	// The load goes on for the next caller, who shares it.
	close(l.release)
	if s, err := ix.Get(context.Background(), tenant("t")); err != nil || s.Len() != 3 || l.calls.Load() != 1 {
		t.Fatalf("next caller: %v, %d loads", err, l.calls.Load())
	}
}

func TestIndex_Evict(t *testing.T) {
	c := &clock{t: time.Unix(1_000_000, 0)}
	l := &loader{}
	ix := New(Config{Load: l.load, MaxTenants: 2, Now: c.Now})
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if _, err := ix.Get(ctx, tenant(id)); err != nil {
			t.Fatal(err)
		}
		c.Add(time.Second)
	}
	if _, err := ix.Get(ctx, tenant("a")); err != nil { // a is now the most recent
		t.Fatal(err)
	}
	c.Add(time.Second)
	if _, err := ix.Get(ctx, tenant("c")); err != nil {
		t.Fatal(err)
	}
	ix.mu.Lock()
	_, hasA := ix.tenants["a"]
	_, hasB := ix.tenants["b"]
	n := len(ix.tenants)
	ix.mu.Unlock()
	if !hasA || hasB || n != 2 {
		t.Fatalf("after eviction: a=%v b=%v n=%d, want a kept, b dropped", hasA, hasB, n)
	}
}

func TestSnapshot_Search(t *testing.T) {
	s := NewSnapshot([]connect.Space{
		{Key: "ENG", Name: "Engineering"},
		{Key: "docs", Name: "documentation"},
		{Key: "AAA", Name: "Documentation"},
		{Key: "PROD", Name: "Équipe Produit"},
		{Key: "~ada", Name: "Ada Admin"},
	}, time.Now())
	if diff := cmp.Diff([]string{"~ada", "AAA", "docs", "ENG", "PROD"}, keys(s)); diff != "" {
		t.Fatalf("sort order (-want +got):\n%s", diff)
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{"~ada", "AAA", "docs", "ENG", "PROD"}},
		{"   ", []string{"~ada", "AAA", "docs", "ENG", "PROD"}},
		{"DOC", []string{"AAA", "docs"}},
		{"aaa", []string{"AAA"}},
		{"équipe", []string{"PROD"}},
		{"produit équipe", []string{"PROD"}},
		{"eng prod", nil},
		{"~", []string{"~ada"}},
		{"zzz", nil},
	}
	for _, tt := range tests {
		m := s.Search(tt.query)
		var got []string
		for i := range m.Len() {
			got = append(got, m.At(i).Key)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Search(%q) (-want +got):\n%s", tt.query, diff)
		}
	}
	if sp, ok := s.ByKey("docs"); !ok || sp.Name != "documentation" {
		t.Errorf("ByKey(docs) = %+v %v", sp, ok)
	}
	if _, ok := s.ByKey("DOCS"); ok {
		t.Errorf("keys are case-sensitive")
	}
}

func BenchmarkSnapshot_Search(b *testing.B) {
	list := make([]connect.Space, 5000)
	for i := range list {
		list[i] = connect.Space{ID: fmt.Sprint(i), Key: fmt.Sprintf("S%05d", i), Name: fmt.Sprintf("Aurora Borealis %05d", i)}
	}
	s := NewSnapshot(list, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if s.Search("borealis 0499").Len() != 11 { // 00499 and 04990-04999
			b.Fatal("wrong count")
		}
	}
}
