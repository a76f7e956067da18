package policy

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

type fakeMirror struct {
	mu   sync.Mutex
	set  map[netip.Addr]time.Time
	adds int
}

func (m *fakeMirror) Ban(a netip.Addr, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set[a] = until
	m.adds++
	return nil
}

func (m *fakeMirror) Unban(a netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.set, a)
	return nil
}

func TestBans(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a, b, c := netip.MustParseAddr("203.0.113.20"), netip.MustParseAddr("203.0.113.21"), netip.MustParseAddr("::ffff:203.0.113.22")
	var bl BanList = NewBans(2)
	bans := bl.(*Bans)
	var added, lifted int
	bans.OnChange = func(_ Ban, add bool) {
		if add {
			added++
		} else {
			lifted++
		}
	}
	m := &fakeMirror{set: map[netip.Addr]time.Time{}}
	if !bl.Ban(a, time.Minute, "rate", t0) {
		t.Fatal("first ban refused")
	}
	bans.SetMirror(m) // replays a
	if _, ok := m.set[a]; !ok {
		t.Fatal("mirror did not get the existing ban")
	}
	if bl.Ban(a, 2*time.Minute, "rate", t0) {
		t.Error("second ban of the same source reported as new")
	}
	if !bl.Ban(c, time.Minute, "scanner", t0) {
		t.Fatal("ban of c refused")
	}
	if bl.Ban(b, time.Minute, "auth", t0) {
		t.Error("ban beyond max accepted")
	}
	for _, tc := range []struct {
		addr netip.Addr
		at   time.Duration
		want bool
	}{
		{a, 0, true},
		{a, 90 * time.Second, true}, // extended to 2m
		{a, 2 * time.Minute, false},
		{netip.MustParseAddr("203.0.113.22"), 0, true}, // mapped and plain are one source
		{b, 0, false},
	} {
		if got := bl.Banned(tc.addr, t0.Add(tc.at)); got != tc.want {
			t.Errorf("%s at +%v: banned=%v, want %v", tc.addr, tc.at, got, tc.want)
		}
	}
	if l := bl.List(t0); len(l) != 2 || l[0].Addr != netip.MustParseAddr("203.0.113.22") || l[1].Dropped != 2 {
		t.Errorf("list = %+v", l)
	}
	if n := bl.Expire(t0.Add(61 * time.Second)); n != 1 {
		t.Errorf("%d bans left after c expired, want 1", n)
	}
	if _, ok := m.set[netip.MustParseAddr("203.0.113.22")]; ok {
		t.Error("mirror kept an expired ban")
	}
	if !bl.Unban(a) || bl.Unban(a) {
		t.Error("unban")
	}
	if len(m.set) != 0 || added != 2 || lifted != 2 {
		t.Errorf("mirror %v, added %d lifted %d", m.set, added, lifted)
	}
}
