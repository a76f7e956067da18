package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

// Counters is one reading of sbcd's figures: counters since start and
// levels now. cmd/sbcd fills it from the B2BUA.
type Counters struct {
	Offered, Shed uint64 // new calls and calls refused for load, since start
	Active        int
	MOS, MOSMin   float64 // over the active calls with media; 0 without
}

// History keeps the last Capacity samples of sbcd's load and quality in a
// ring, so the dashboard's charts need no database: at one point every
// 10 s, 360 points are the last hour in about 30 KB.
type History struct {
	interval time.Duration

	mu     sync.Mutex
	ring   []api.HistoryPoint // fixed length; next is the oldest once full
	next   int
	full   bool
	last   Counters // the previous reading, the base of the next rates
	lastAt time.Time
	primed bool // last is set
}

// NewHistory keeps capacity points taken interval apart.
func NewHistory(interval time.Duration, capacity int) *History {
	return &History{interval: interval, ring: make([]api.HistoryPoint, capacity)}
}

// Sample records a reading taken at now. The first reading is only the
// base for the rates of the next; a clock that did not move adds nothing.
func (h *History) Sample(now time.Time, c Counters) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.primed {
		h.last, h.lastAt, h.primed = c, now, true
		return
	}
	secs := now.Sub(h.lastAt).Seconds()
	if secs <= 0 {
		return
	}
	h.ring[h.next] = api.HistoryPoint{
		Time: now.UTC(), Active: c.Active, MOS: c.MOS, MOSMin: c.MOSMin,
		CPS:    rate(h.last.Offered, c.Offered, secs),
		ShedPS: rate(h.last.Shed, c.Shed, secs),
	}
	h.next++
	if h.next == len(h.ring) {
		h.next, h.full = 0, true
	}
	h.last, h.lastAt = c, now
}

// rate is the counter's increase per second; a counter that went back
// (it never should) counts as no increase.
func rate(before, after uint64, secs float64) float64 {
	if after < before {
		return 0
	}
	return float64(after-before) / secs
}

// Snapshot is the history, oldest point first.
func (h *History) Snapshot() api.History {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := api.History{IntervalS: h.interval.Seconds(), Capacity: len(h.ring), Points: []api.HistoryPoint{}}
	if h.full {
		out.Points = append(out.Points, h.ring[h.next:]...)
	}
	out.Points = append(out.Points, h.ring[:h.next]...)
	return out
}

// ServeHTTP is GET /api/v1/history.
func (h *History) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(h.Snapshot())
}

// Run samples read every interval until ctx ends, the first reading at
// once.
func (h *History) Run(ctx context.Context, read func() Counters) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	h.Sample(time.Now(), read())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.Sample(now, read())
		}
	}
}
