package sbc

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// ErrHandlerStalled: a request handler has not answered within the bound
// (CheckHandlers).
var ErrHandlerStalled = errors.New("SIP handler stalled")

// handlerRuns is the SIP side's progress for the watchdog: the request
// handlers running now that must answer before they wait on anything.
//
// Why in-flight tracking and not a periodic probe OPTIONS through the
// handler: a probe only proves that the probe's own path is free, while
// the handlers that got stuck in issue 11 were INVITEs behind a lock.
// Tracking sees every real request. It is limited to requests outside a
// dialog, up to their first response: the SBC answers those itself
// (OPTIONS, 405, 501, 481, auth challenges) or sends 100 Trying for an
// INVITE at once, so a first response that takes longer than the bound is
// a stall. Requests in a dialog are relayed and wait on the network
// legitimately; ACK gets no response.
type handlerRuns struct {
	mu   sync.Mutex
	live map[*handlerRun]struct{}
	byTx map[sip.ServerTransaction]*handlerRun
}

type handlerRun struct {
	method sip.RequestMethod
	start  time.Time
}

// track starts tracking one handler call; the returned func ends it.
func (h *handlerRuns) track(req *sip.Request, tx sip.ServerTransaction) func() {
	if tx == nil || req.Method == sip.ACK || toTag(req) != "" {
		return func() {}
	}
	run := &handlerRun{method: req.Method, start: time.Now()}
	h.mu.Lock()
	if h.live == nil {
		h.live, h.byTx = map[*handlerRun]struct{}{}, map[sip.ServerTransaction]*handlerRun{}
	}
	h.live[run] = struct{}{}
	h.byTx[tx] = run
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.live, run)
		if h.byTx[tx] == run {
			delete(h.byTx, tx)
		}
		h.mu.Unlock()
	}
}

// answered: tx's handler sent its first response, it is off the clock.
func (h *handlerRuns) answered(tx sip.ServerTransaction) {
	h.mu.Lock()
	if run, ok := h.byTx[tx]; ok {
		delete(h.live, run)
		delete(h.byTx, tx)
	}
	h.mu.Unlock()
}

// CheckHandlers is the watchdog's SIP check: an error when a request
// outside a dialog has waited longer than bound for its first response
// (see handlerRuns).
func (s *SBC) CheckHandlers(bound time.Duration) error {
	h := &s.handlers
	h.mu.Lock()
	defer h.mu.Unlock()
	var oldest *handlerRun
	late := 0
	for run := range h.live {
		if time.Since(run.start) > bound {
			late++
			if oldest == nil || run.start.Before(oldest.start) {
				oldest = run
			}
		}
	}
	if late == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d requests unanswered past %v, the oldest a %s for %v",
		ErrHandlerStalled, late, bound, oldest.method, time.Since(oldest.start).Round(time.Millisecond))
}
