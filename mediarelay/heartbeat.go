package mediarelay

import (
	"errors"
	"fmt"
	"time"
)

// Liveness checks for a watchdog (sbcd's watchdog package): a stuck relay
// worker, or a stuck anchor lock, stops every call's media while the
// process looks alive.

// ErrStalled is wrapped by the Heartbeat errors.
var ErrStalled = errors.New("media relay stalled")

// Heartbeat checks that every started worker still reads its command
// queue: it queues a no-op with each one and waits at most timeout for all
// of them to run it. The error names the workers that did not. A worker
// that has not run the previous heartbeat yet gets no second one: the
// wait is on the pending one, so a stuck worker's queue does not grow.
// No goroutine waits beyond timeout: the worker closes the ack channel
// whenever it gets to it.
func (r *Relay) Heartbeat(timeout time.Duration) error {
	r.mu.Lock()
	ws, closed := r.workers, r.closed
	r.mu.Unlock()
	if closed || len(ws) == 0 {
		return nil // nothing to serve with: nothing can be stuck
	}
	acks := make([]<-chan struct{}, len(ws))
	for i, w := range ws {
		acks[i] = w.heartbeat()
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var late []int
	expired := false
	for i, ack := range acks {
		if !expired {
			select {
			case <-ack:
				continue
			case <-t.C:
				expired = true
			}
		}
		select {
		case <-ack:
		default:
			late = append(late, i)
		}
	}
	if len(late) > 0 {
		return fmt.Errorf("%w: worker %v of %d did not run a heartbeat within %v", ErrStalled, late, len(ws), timeout)
	}
	return nil
}

// heartbeat is the ack of the worker's pending heartbeat, queued if there
// is none.
func (w *worker) heartbeat() <-chan struct{} {
	w.mu.Lock()
	if w.hb != nil {
		select {
		case <-w.hb:
			w.hb = nil // ran: queue a fresh one
		default:
		}
	}
	ack, fresh := w.hb, w.hb == nil
	if fresh {
		ack = make(chan struct{})
		w.hb = ack
	}
	w.mu.Unlock()
	if fresh {
		w.submit(workerCmd{fn: func() { close(ack) }})
	}
	return ack
}

// StallWorker makes the first worker do nothing but wait for d, as a
// worker stuck in a callback would. It is a test hook for the watchdog:
// sbcd reaches it only through an admin endpoint that exists when the
// environment asks for test hooks. It starts the workers if no stream did.
func (r *Relay) StallWorker(d time.Duration) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrRelayClosed
	}
	if err := r.startWorkers(); err != nil {
		r.mu.Unlock()
		return err
	}
	w := r.workers[0]
	r.mu.Unlock()
	w.submit(workerCmd{fn: func() { time.Sleep(d) }})
	return nil
}

// Heartbeat checks the relay's workers (Relay.Heartbeat) and that the
// anchor's call map lock (Anchor.mu) can be taken, both within timeout.
// A lock that stays held is how the relay's deadlock of issue 11 showed:
// every new call queued behind it.
func (a *Anchor) Heartbeat(timeout time.Duration) error {
	start := time.Now()
	locked := a.lockProbe()
	err := a.relay.Heartbeat(timeout)
	t := time.NewTimer(max(timeout-time.Since(start), 0))
	defer t.Stop()
	select {
	case <-locked:
	case <-t.C:
		err = errors.Join(err, fmt.Errorf("%w: the anchor's call map lock not free within %v", ErrStalled, timeout))
	}
	return err
}

// StallWorker is Relay.StallWorker on the anchor's relay (a test hook).
func (a *Anchor) StallWorker(d time.Duration) error { return a.relay.StallWorker(d) }

// lockProbe takes and drops a.mu in a goroutine; the channel closes once
// it did. A probe still waiting for the lock is returned again, never
// joined by a second goroutine (a stuck lock costs one goroutine, not one
// per check).
func (a *Anchor) lockProbe() <-chan struct{} {
	a.probeMu.Lock()
	defer a.probeMu.Unlock()
	if a.probe != nil {
		return a.probe
	}
	ch := make(chan struct{})
	a.probe = ch
	go func() {
		a.mu.Lock()
		//lint:ignore SA2001 taking the lock is the probe: it proves no one holds it for long
		a.mu.Unlock()
		a.probeMu.Lock()
		a.probe = nil
		a.probeMu.Unlock()
		close(ch)
	}()
	return ch
}
