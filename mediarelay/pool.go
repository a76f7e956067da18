package mediarelay

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// ErrPortsExhausted: every RTP/RTCP pair of a pool is allocated (the SIP side
// answers 503).
var ErrPortsExhausted = errors.New("media ports exhausted")

// errBadRange wraps NewPool's argument errors.
var errBadRange = errors.New("bad media port range")

// Pool hands out RTP/RTCP port pairs (RTP even, RTCP = RTP+1) on one local
// address. It only books numbers; binding is the relay's job.
type Pool struct {
	addr  netip.Addr
	first int // first RTP port (even)

	mu   sync.Mutex
	used []bool // indexed by (rtp-first)/2
	next int    // round-robin cursor into used
	n    int    // pairs in use
}

// NewPool books pairs in [lo, hi]: lo is rounded up to even, hi is
// inclusive and must leave room for the RTCP port of the last pair.
func NewPool(addr netip.Addr, lo, hi int) (*Pool, error) {
	if !addr.IsValid() {
		return nil, fmt.Errorf("%w: invalid address", errBadRange)
	}
	if lo < 1 || hi > 65535 {
		return nil, fmt.Errorf("%w: %d-%d outside 1-65535", errBadRange, lo, hi)
	}
	lo += lo & 1
	pairs := (hi - lo + 1) / 2
	if pairs < 1 {
		return nil, fmt.Errorf("%w: %d-%d holds no even/odd pair", errBadRange, lo, hi)
	}
	return &Pool{addr: addr, first: lo, used: make([]bool, pairs)}, nil
}

// Addr is the local address the pool's ports belong to.
func (p *Pool) Addr() netip.Addr { return p.addr }

// Alloc returns the next free RTP port after the last one handed out. Round
// robin, so that a port freed by a call that just ended is not reused at once
// and late packets of the old call cannot land in a new one.
func (p *Pool) Alloc() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range p.used {
		i := p.next
		p.next = (p.next + 1) % len(p.used)
		if !p.used[i] {
			p.used[i] = true
			p.n++
			return p.first + 2*i, nil
		}
	}
	return 0, ErrPortsExhausted
}

// Free returns a pair. Ports the pool never handed out are ignored.
func (p *Pool) Free(rtp int) {
	i := (rtp - p.first) / 2
	if rtp < p.first || rtp&1 != 0 || i >= len(p.used) {
		return
	}
	p.mu.Lock()
	if p.used[i] {
		p.used[i] = false
		p.n--
	}
	p.mu.Unlock()
}

// InUse is the number of pairs allocated.
func (p *Pool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
