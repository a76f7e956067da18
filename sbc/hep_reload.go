package sbc

import (
	"fmt"
	"time"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/hep"
)

// reloadHEP puts a changed hep section in service: every SIP message from
// now on goes to the new collector (or nowhere), the old client flushes
// what it has queued for up to a second. Tracing that was off at start
// cannot be turned on: the listeners were not wrapped (a restart does).
func (s *SBC) reloadHEP(h config.HEP) (apply func(), err error) {
	if s.hep == nil {
		if h.Enabled() {
			return nil, fmt.Errorf("%w: hep.address: HEP tracing was off at start; turning it on needs a restart of sbcd", config.ErrInvalid)
		}
		return func() {}, nil
	}
	var c *hep.Client
	if h.Enabled() {
		if c, err = hep.New(hep.Config{
			Address: h.Address, Transport: h.Transport, CaptureID: uint32(h.CaptureID),
			Password: h.Password, QueueSize: h.QueueSize,
		}, s.log); err != nil {
			return nil, fmt.Errorf("hep: %w", err)
		}
	}
	return func() {
		s.hep.retire(s.hep.c.Swap(c), true)
		if c == nil {
			s.log.Info("HEP tracing off (reload)")
			return
		}
		s.log.Info("HEP tracing to a new collector (reload)", "collector", h.Address, "transport", h.Transport, "capture_id", h.CaptureID)
	}, nil
}

// retire closes a client that was swapped out, flushing for up to a
// second (in the background when async), and folds its counts into the
// tap's so the counters never go back.
func (t *hepTap) retire(c *hep.Client, async bool) {
	if c == nil {
		return
	}
	t.mu.Lock()
	t.retired = append(t.retired, c)
	t.mu.Unlock()
	done := func() {
		c.Close(time.Second)
		t.mu.Lock()
		defer t.mu.Unlock()
		st := c.Stats()
		t.base = addStats(t.base, st)
		for i, r := range t.retired {
			if r == c {
				t.retired = append(t.retired[:i], t.retired[i+1:]...)
				break
			}
		}
	}
	if async {
		t.retiring.Go(done)
		return
	}
	done()
}

// stats are the counts of every client the tap has had.
func (t *hepTap) stats() hep.Stats {
	t.mu.Lock()
	st := t.base
	for _, r := range t.retired {
		st = addStats(st, r.Stats())
	}
	t.mu.Unlock()
	if c := t.c.Load(); c != nil {
		st = addStats(st, c.Stats())
	}
	return st
}

func addStats(a, b hep.Stats) hep.Stats {
	return hep.Stats{Queued: a.Queued + b.Queued, Sent: a.Sent + b.Sent, Dropped: a.Dropped + b.Dropped, Errors: a.Errors + b.Errors}
}
