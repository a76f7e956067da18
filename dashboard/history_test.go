package dashboard

import (
	"testing"
	"time"
)

// The ring keeps the last Capacity points oldest first, rates come from
// the counters' increase over the time between readings, and the first
// reading is only a base.
func TestHistoryRing(t *testing.T) {
	h := NewHistory(10*time.Second, 3)
	t0 := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	if got := h.Snapshot(); len(got.Points) != 0 || got.Capacity != 3 || got.IntervalS != 10 {
		t.Fatalf("empty history: %+v", got)
	}
	h.Sample(t0, Counters{Offered: 100, Shed: 5, Active: 7})
	if n := len(h.Snapshot().Points); n != 0 {
		t.Fatalf("the first reading made %d points, want 0 (it is the base)", n)
	}
	h.Sample(t0.Add(10*time.Second), Counters{Offered: 150, Shed: 25, Active: 40, MOS: 4.2, MOSMin: 3.1})
	h.Sample(t0.Add(10*time.Second), Counters{Offered: 999}) // the clock did not move: ignored
	h.Sample(t0.Add(30*time.Second), Counters{Offered: 250, Shed: 25, Active: 41})
	p := h.Snapshot().Points
	if len(p) != 2 {
		t.Fatalf("%d points, want 2: %+v", len(p), p)
	}
	if p[0].CPS != 5 || p[0].ShedPS != 2 || p[0].Active != 40 || p[0].MOS != 4.2 || p[0].MOSMin != 3.1 || !p[0].Time.Equal(t0.Add(10*time.Second)) {
		t.Errorf("first point %+v, want 5 cps, 2 shed/s, 40 active, MOS 4.2/3.1", p[0])
	}
	if p[1].CPS != 5 || p[1].ShedPS != 0 || p[1].Active != 41 {
		t.Errorf("second point %+v, want 5 cps over 20 s, 0 shed", p[1])
	}
	// Past capacity the oldest go first.
	for i := range 5 {
		h.Sample(t0.Add(time.Duration(40+10*i)*time.Second), Counters{Offered: 250, Active: 100 + i})
	}
	p = h.Snapshot().Points
	if len(p) != 3 || p[0].Active != 102 || p[1].Active != 103 || p[2].Active != 104 {
		t.Fatalf("after wrapping: %+v, want active 102, 103, 104", p)
	}
	if !p[0].Time.Before(p[1].Time) || !p[1].Time.Before(p[2].Time) {
		t.Errorf("not oldest first: %v %v %v", p[0].Time, p[1].Time, p[2].Time)
	}
	if p[0].CPS != 0 || p[0].ShedPS != 0 {
		t.Errorf("a counter going back (shed 25 -> 0) gave %+v, want 0 rates", p[0])
	}
}
