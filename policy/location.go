package policy

import (
	"sort"
	"strings"
	"sync"
	"time"
)

// Binding is one registered contact of an address of record.
type Binding struct {
	AOR string `json:"aor"`
	// Contact is the Contact URI as registered.
	Contact string `json:"contact"`
	// Host, Port and Transport are where calls to the binding are sent.
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	Transport string    `json:"transport"`
	Source    string    `json:"source"` // where the REGISTER came from
	Expires   time.Time `json:"expires"`
	CallID    string    `json:"-"`
	CSeq      uint32    `json:"-"`
}

// Locations is the registrar's location service: bindings by AOR, with
// expiry, bounded to max bindings in total.
type Locations struct {
	max int

	mu    sync.Mutex
	byAOR map[string][]Binding
	n     int
}

// NewLocations holds at most max bindings.
func NewLocations(max int) *Locations {
	return &Locations{max: max, byAOR: map[string][]Binding{}}
}

// Update adds, refreshes or (expires <= now) removes the binding of
// b.Contact under b.AOR. A refresh from the same Call-ID with a CSeq not
// higher than the stored one is ignored (RFC 3261 10.3 step 7).
func (l *Locations) Update(b Binding, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	list := l.byAOR[b.AOR]
	for i, x := range list {
		if x.Contact != b.Contact {
			continue
		}
		if x.CallID == b.CallID && b.CSeq <= x.CSeq {
			return nil
		}
		if !b.Expires.After(now) {
			l.byAOR[b.AOR] = append(list[:i:i], list[i+1:]...)
			l.n--
			if len(l.byAOR[b.AOR]) == 0 {
				delete(l.byAOR, b.AOR)
			}
			return nil
		}
		list[i] = b
		return nil
	}
	if !b.Expires.After(now) {
		return nil
	}
	if l.n >= l.max {
		l.expireLocked(now)
		if l.n >= l.max {
			return ErrLocationsFull
		}
	}
	l.byAOR[b.AOR] = append(l.byAOR[b.AOR], b)
	l.n++
	return nil
}

// RemoveAll drops every binding of aor (REGISTER with Contact: * and
// Expires: 0).
func (l *Locations) RemoveAll(aor string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n -= len(l.byAOR[aor])
	delete(l.byAOR, aor)
}

// Lookup returns aor's live bindings, latest expiry first.
func (l *Locations) Lookup(aor string, now time.Time) []Binding {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Binding
	for _, b := range l.byAOR[aor] {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Expires.After(out[j].Expires) })
	return out
}

// List returns every live binding.
func (l *Locations) List(now time.Time) []Binding {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Binding{}
	for _, list := range l.byAOR {
		for _, b := range list {
			if b.Expires.After(now) {
				out = append(out, b)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].AOR != out[j].AOR {
			return out[i].AOR < out[j].AOR
		}
		return out[i].Contact < out[j].Contact
	})
	return out
}

// Expire drops the bindings that ran out and returns how many remain.
func (l *Locations) Expire(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(now)
	return l.n
}

func (l *Locations) expireLocked(now time.Time) {
	for aor, list := range l.byAOR {
		keep := list[:0]
		for _, b := range list {
			if b.Expires.After(now) {
				keep = append(keep, b)
			}
		}
		l.n -= len(list) - len(keep)
		if len(keep) == 0 {
			delete(l.byAOR, aor)
		} else {
			l.byAOR[aor] = keep
		}
	}
}

// HasSource says whether a live binding was registered from ip (the host
// of its REGISTER's source): a registered phone is a known peer of its
// realm. It scans the bindings (max_bindings bounds them); the guard asks
// only for sources it does not know otherwise.
func (l *Locations) HasSource(ip string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, list := range l.byAOR {
		for _, b := range list {
			if b.Expires.After(now) && sourceHost(b.Source) == ip {
				return true
			}
		}
	}
	return false
}

// sourceHost is the host of "ip:port" (or "[v6]:port").
func sourceHost(s string) string {
	if i := strings.LastIndexByte(s, ':'); i > 0 && !strings.HasSuffix(s, "]") {
		return strings.Trim(s[:i], "[]")
	}
	return s
}
