// Package spaces keeps, per tenant, an in-memory index of the site's spaces,
// so that the Space Sync page can search and page through a site of
// thousands of spaces without asking Confluence for every keystroke.
//
// The index is a cache (DESIGN section 3): it may be lost at any time, each
// replica has its own, and it can be up to one TTL behind Confluence. It
// never decides who may see a space; the caller checks each space it shows
// with Confluence's permissions.
package spaces

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"spacesync.io/cloud-app/internal/connect"
	"spacesync.io/cloud-app/internal/store"
)

// Loader lists every space of a tenant's site (normally
// connect.Site.AllSpaces).
type Loader func(ctx context.Context, t *store.Tenant) ([]connect.Space, error)

// Defaults of Config.
const (
	DefaultTTL         = 5 * time.Minute
	DefaultLoadTimeout = 2 * time.Minute
	DefaultMaxTenants  = 1000
)

// Config configures New.
type Config struct {
	// Load lists a tenant's spaces; required.
	Load Loader
	// TTL is how long a loaded list is served without a refresh. After it,
	// the old list is still served while one refresh runs in the
	// background.
	TTL time.Duration
	// LoadTimeout bounds one load; it does not depend on any one request,
	// since several requests may wait for the same load.
	LoadTimeout time.Duration
	// MaxTenants bounds how many tenants' lists are kept; the least
	// recently used are dropped first.
	MaxTenants int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Index is the per-tenant space index. It is safe for concurrent use.
type Index struct {
	load        Loader
	ttl         time.Duration
	loadTimeout time.Duration
	maxTenants  int
	now         func() time.Time

	mu      sync.Mutex
	tenants map[string]*entry
}

type entry struct {
	snap     *Snapshot
	lastUsed time.Time
	// flight is the load in progress, if any; every caller that needs a
	// load while it runs shares it (single flight).
	flight *flight
}

type flight struct {
	done chan struct{}
	snap *Snapshot
	err  error
}

// New returns an empty index.
func New(c Config) *Index {
	ix := &Index{load: c.Load, ttl: c.TTL, loadTimeout: c.LoadTimeout, maxTenants: c.MaxTenants, now: c.Now,
		tenants: map[string]*entry{}}
	if ix.ttl <= 0 {
		ix.ttl = DefaultTTL
	}
	if ix.loadTimeout <= 0 {
		ix.loadTimeout = DefaultLoadTimeout
	}
	if ix.maxTenants <= 0 {
		ix.maxTenants = DefaultMaxTenants
	}
	if ix.now == nil {
		ix.now = time.Now
	}
	return ix
}

// Get returns the tenant's spaces. A fresh list is returned at once; a list
// older than the TTL is returned at once too while a refresh starts in the
// background; with no list yet, Get waits for the load (which concurrent
// callers share) or for ctx. A failed load is not kept: the next Get tries
// again.
func (ix *Index) Get(ctx context.Context, t *store.Tenant) (*Snapshot, error) {
	if t == nil || t.ID == "" {
		return nil, errors.New("spaces: no tenant")
	}
	now := ix.now()
	ix.mu.Lock()
	e := ix.tenants[t.ID]
	if e == nil {
		e = &entry{}
		ix.tenants[t.ID] = e
		ix.evictLocked()
	}
	e.lastUsed = now
	if e.snap != nil {
		snap := e.snap
		if now.Sub(snap.LoadedAt) >= ix.ttl && e.flight == nil {
			ix.startLocked(t, e)
		}
		ix.mu.Unlock()
		return snap, nil
	}
	f := e.flight
	if f == nil {
		f = ix.startLocked(t, e)
	}
	ix.mu.Unlock()
	select {
	case <-f.done:
		return f.snap, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Invalidate drops the tenant's list (the next Get loads it again).
func (ix *Index) Invalidate(tenantID string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if e := ix.tenants[tenantID]; e != nil && e.flight == nil {
		delete(ix.tenants, tenantID)
	} else if e != nil {
		e.snap = nil
	}
}

// startLocked starts a load for the tenant; ix.mu is held.
func (ix *Index) startLocked(t *store.Tenant, e *entry) *flight {
	f := &flight{done: make(chan struct{})}
	e.flight = f
	tenant := *t
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ix.loadTimeout)
		defer cancel()
		list, err := ix.load(ctx, &tenant)
		var snap *Snapshot
		if err == nil {
			snap = NewSnapshot(list, ix.now())
		}
		ix.mu.Lock()
		if snap != nil {
			e.snap = snap
		}
		e.flight = nil
		ix.mu.Unlock()
		f.snap, f.err = snap, err
		close(f.done)
	}()
	return f
}

// evictLocked drops the least recently used idle tenants beyond
// maxTenants; ix.mu is held.
func (ix *Index) evictLocked() {
	for len(ix.tenants) > ix.maxTenants {
		var oldestID string
		var oldest time.Time
		for id, e := range ix.tenants {
			if e.flight != nil || e.snap == nil {
				continue
			}
			if oldestID == "" || e.lastUsed.Before(oldest) {
				oldestID, oldest = id, e.lastUsed
			}
		}
		if oldestID == "" {
			return
		}
		delete(ix.tenants, oldestID)
	}
}

// Snapshot is one loaded list of a tenant's spaces, sorted by name
// (ignoring case) and then key. It is immutable.
type Snapshot struct {
	// LoadedAt is when the list was loaded.
	LoadedAt time.Time
	spaces   []connect.Space
	// folded is the lower-cased "name\x00key" of each space, for search.
	folded []string
	byKey  map[string]int
}

// NewSnapshot sorts a list of spaces into a snapshot.
func NewSnapshot(list []connect.Space, loadedAt time.Time) *Snapshot {
	spaces := make([]connect.Space, len(list))
	copy(spaces, list)
	type keyed struct {
		name string
		sp   connect.Space
	}
	tmp := make([]keyed, len(spaces))
	for i, sp := range spaces {
		tmp[i] = keyed{strings.ToLower(sp.Name), sp}
	}
	sort.SliceStable(tmp, func(i, j int) bool {
		if tmp[i].name != tmp[j].name {
			return tmp[i].name < tmp[j].name
		}
		return tmp[i].sp.Key < tmp[j].sp.Key
	})
	s := &Snapshot{LoadedAt: loadedAt, spaces: spaces, folded: make([]string, len(tmp)), byKey: make(map[string]int, len(tmp))}
	for i, k := range tmp {
		s.spaces[i] = k.sp
		s.folded[i] = k.name + "\x00" + strings.ToLower(k.sp.Key)
		s.byKey[k.sp.Key] = i
	}
	return s
}

// Len is the number of spaces.
func (s *Snapshot) Len() int { return len(s.spaces) }

// At returns the i-th space in sort order.
func (s *Snapshot) At(i int) connect.Space { return s.spaces[i] }

// ByKey returns the space with the key (keys are case-sensitive, as in
// Confluence).
func (s *Snapshot) ByKey(key string) (connect.Space, bool) {
	i, ok := s.byKey[key]
	if !ok {
		return connect.Space{}, false
	}
	return s.spaces[i], true
}

// MaxQueryLength bounds a search text, in bytes.
const MaxQueryLength = 200

// Search returns the positions, in sort order, of the spaces whose name or
// key contains every word of query, ignoring case. An empty query matches
// every space.
func (s *Snapshot) Search(query string) Match {
	words := strings.Fields(strings.ToLower(query))
	if len(words) == 0 {
		return Match{s: s, all: true}
	}
	var idx []int
	for i, f := range s.folded {
		ok := true
		for _, w := range words {
			if !strings.Contains(f, w) {
				ok = false
				break
			}
		}
		if ok {
			idx = append(idx, i)
		}
	}
	return Match{s: s, idx: idx}
}

// Match is the result of a search: a subsequence of a snapshot.
type Match struct {
	s   *Snapshot
	all bool
	idx []int
}

// Len is the number of matching spaces.
func (m Match) Len() int {
	if m.all {
		return m.s.Len()
	}
	return len(m.idx)
}

// At returns the i-th matching space.
func (m Match) At(i int) connect.Space {
	if m.all {
		return m.s.At(i)
	}
	return m.s.At(m.idx[i])
}
