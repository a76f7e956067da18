package policy

import (
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Ban is one banned source.
type Ban struct {
	Addr   netip.Addr `json:"addr"`
	Reason string     `json:"reason"`
	Since  time.Time  `json:"since"`
	Until  time.Time  `json:"until"`
	// Dropped counts the packets dropped from the source while banned (in
	// user space; an XDP mirror counts its own).
	Dropped uint64 `json:"dropped"`
}

// BanList is where bans live. The SBC checks it for every datagram before
// parsing; the memory implementation is Bans. It is an interface so that
// the list can be mirrored into the kernel (an XDP ban map drops banned
// sources before they reach user space): see BanMirror.
type BanList interface {
	// Ban bans addr until now+d; it returns false when addr was already
	// banned (the ban is then extended) or the list is full.
	Ban(addr netip.Addr, d time.Duration, reason string, now time.Time) bool
	// Banned reports whether addr is banned at now, and counts the hit.
	Banned(addr netip.Addr, now time.Time) bool
	// Unban lifts a ban; false when there was none.
	Unban(addr netip.Addr) bool
	// List returns the active bans, soonest to expire first.
	List(now time.Time) []Ban
	// Expire lifts the bans that ran out and returns how many remain.
	Expire(now time.Time) int
}

// BanMirror receives every ban and unban of a Bans list. Its method set is
// that of the bpf package's *Datapath (Ban, Unban on its XDP ban map), so
// the datapath plugs in as is: SBC.MirrorBans(datapath) and banned sources
// are dropped in XDP before they reach user space. Errors (a full map, say)
// leave the user-space list authoritative.
type BanMirror interface {
	Ban(addr netip.Addr, until time.Time) error
	Unban(addr netip.Addr) error
}

// Bans is the in-memory BanList, bounded to max entries.
type Bans struct {
	max int

	mu     sync.RWMutex
	bans   map[netip.Addr]*entry
	mirror BanMirror
	// OnChange, when set, is called (without locks held) after a ban is
	// added (added=true) or lifted; metrics hang here.
	OnChange func(b Ban, added bool)
}

type entry struct {
	Ban
	dropped atomic.Uint64
}

func (e *entry) snapshot() Ban {
	b := e.Ban
	b.Dropped = e.dropped.Load()
	return b
}

// NewBans makes an empty ban list holding at most max sources.
func NewBans(max int) *Bans {
	return &Bans{max: max, bans: map[netip.Addr]*entry{}}
}

// SetMirror makes every later ban and unban reach m as well; the bans
// already in the list are replayed into it.
func (b *Bans) SetMirror(m BanMirror) {
	b.mu.Lock()
	b.mirror = m
	cur := make([]Ban, 0, len(b.bans))
	for _, x := range b.bans {
		cur = append(cur, x.snapshot())
	}
	b.mu.Unlock()
	for _, x := range cur {
		_ = m.Ban(x.Addr, x.Until)
	}
}

// Ban implements BanList.
func (b *Bans) Ban(addr netip.Addr, d time.Duration, reason string, now time.Time) bool {
	addr = addr.Unmap()
	until := now.Add(d)
	b.mu.Lock()
	if x, ok := b.bans[addr]; ok {
		if until.After(x.Until) {
			x.Until = until
		}
		m := b.mirror
		b.mu.Unlock()
		if m != nil {
			_ = m.Ban(addr, until)
		}
		return false
	}
	if len(b.bans) >= b.max {
		b.mu.Unlock()
		return false
	}
	x := &entry{Ban: Ban{Addr: addr, Reason: reason, Since: now, Until: until}}
	b.bans[addr] = x
	m, cb, cp := b.mirror, b.OnChange, x.snapshot()
	b.mu.Unlock()
	if m != nil {
		_ = m.Ban(addr, until)
	}
	if cb != nil {
		cb(cp, true)
	}
	return true
}

// Banned implements BanList. A ban past its time no longer counts even
// before Expire removes it.
func (b *Bans) Banned(addr netip.Addr, now time.Time) bool {
	b.mu.RLock()
	x, ok := b.bans[addr.Unmap()]
	hit := ok && now.Before(x.Until)
	b.mu.RUnlock()
	if hit {
		x.dropped.Add(1)
	}
	return hit
}

// Unban implements BanList.
func (b *Bans) Unban(addr netip.Addr) bool {
	addr = addr.Unmap()
	b.mu.Lock()
	x, ok := b.bans[addr]
	if ok {
		delete(b.bans, addr)
	}
	m, cb := b.mirror, b.OnChange
	b.mu.Unlock()
	if !ok {
		return false
	}
	if m != nil {
		_ = m.Unban(addr)
	}
	if cb != nil {
		cb(x.snapshot(), false)
	}
	return true
}

// List implements BanList.
func (b *Bans) List(now time.Time) []Ban {
	b.mu.RLock()
	out := make([]Ban, 0, len(b.bans))
	for _, x := range b.bans {
		if now.Before(x.Until) {
			out = append(out, x.snapshot())
		}
	}
	b.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Until.Before(out[j].Until) })
	return out
}

// Expire implements BanList.
func (b *Bans) Expire(now time.Time) int {
	b.mu.RLock()
	var gone []netip.Addr
	for a, x := range b.bans {
		if !now.Before(x.Until) {
			gone = append(gone, a)
		}
	}
	n := len(b.bans)
	b.mu.RUnlock()
	for _, a := range gone {
		if b.Unban(a) {
			n--
		}
	}
	return n
}
