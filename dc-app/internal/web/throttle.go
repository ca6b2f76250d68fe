package web

import (
	"sync"
	"time"
)

// throttle limits failed sign-ins per client IP and per username over a
// sliding window. It is checked before bcrypt runs, so a guessing client
// cannot make the server hash at will. It lives in memory: per DESIGN
// section 3 a rate-limit window may be lost on restart and is approximate
// across replicas (each replica counts its own failures).
type throttle struct {
	mu      sync.Mutex
	window  time.Duration
	perIP   int
	perUser int
	now     func() time.Time
	fails   map[string][]time.Time // "ip:..." or "user:..." → failure times in the window
}

// maxThrottleKeys bounds memory under a flood of distinct keys; past it
// the oldest-looking entries are dropped.
const maxThrottleKeys = 10000

func newThrottle(window time.Duration, perIP, perUser int, now func() time.Time) *throttle {
	return &throttle{window: window, perIP: perIP, perUser: perUser, now: now, fails: map[string][]time.Time{}}
}

func ipKey(ip string) string     { return "ip:" + ip }
func userKey(user string) string { return "user:" + user }

// recent returns the failures of key inside the window, pruning older
// ones. t.mu is held.
func (t *throttle) recent(key string, now time.Time) []time.Time {
	fs := t.fails[key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= t.window {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(t.fails, key)
		return nil
	}
	t.fails[key] = fs
	return fs
}

// blocked reports whether another attempt from ip for user must wait, and
// for how long.
func (t *throttle) blocked(ip, user string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	check := func(key string, limit int) {
		fs := t.recent(key, now)
		if len(fs) >= limit {
			if w := fs[len(fs)-limit].Add(t.window).Sub(now); w > wait {
				wait = w
			}
		}
	}
	check(ipKey(ip), t.perIP)
	check(userKey(user), t.perUser)
	return wait > 0, wait
}

// fail records a failed attempt.
func (t *throttle) fail(ip, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.fails) >= maxThrottleKeys {
		for k := range t.fails { // map order is random: good enough eviction
			delete(t.fails, k)
			if len(t.fails) < maxThrottleKeys*9/10 {
				break
			}
		}
	}
	keep := max(t.perIP, t.perUser)
	for _, k := range []string{ipKey(ip), userKey(user)} {
		fs := append(t.recent(k, now), now)
		if len(fs) > keep {
			fs = fs[len(fs)-keep:]
		}
		t.fails[k] = fs
	}
}

// succeed forgets the username's failures after a correct password.
func (t *throttle) succeed(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, userKey(user))
}
