package sbc

import (
	"net/netip"
	"sync"
)

// sourceCalls counts the calls (in setup or up) each source holds, so that
// no one source can take the port pools, the call table or the
// transaction store: strangers get guard.sources.max_calls, peers
// guard.peer_limits.max_calls. Bounded: past max sources, a new source is
// refused until others end (only strangers reach that: a flood of spoofed
// addresses).
type sourceCalls struct {
	mu  sync.Mutex
	n   map[netip.Addr]int
	max int
}

func newSourceCalls(max int) *sourceCalls {
	return &sourceCalls{n: map[netip.Addr]int{}, max: max}
}

// acquire takes one of src's limit calls (limit 0: no limit); release
// gives it back.
func (s *sourceCalls) acquire(src netip.Addr, limit int) (release func(), ok bool) {
	if limit <= 0 {
		return func() {}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, tracked := s.n[src]
	if cur >= limit || !tracked && len(s.n) >= s.max {
		return nil, false
	}
	s.n[src] = cur + 1
	var once sync.Once
	return func() { once.Do(func() { s.done(src) }) }, true
}

func (s *sourceCalls) done(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[src] <= 1 {
		delete(s.n, src)
		return
	}
	s.n[src]--
}
