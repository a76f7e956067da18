package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/sbc"
)

// Drain bounds: how long POST /api/v1/drain waits for the calls to end
// when it names no timeout, and the most it may name.
const (
	drainDefault = 5 * time.Minute
	drainMax     = 24 * time.Hour
)

// drainer takes the node out of service: new calls get 503 (sbc.Drain),
// the calls up carry on, and sbcd shuts down (exit) once none is left or
// the bound passes; then the calls still up are ended or kept as on
// SIGTERM (kept with state_dir or ha, BYE without).
type drainer struct {
	s    *sbc.SBC
	exit context.CancelFunc // starts sbcd's shutdown
	log  *slog.Logger
	poll time.Duration

	mu       sync.Mutex
	deadline time.Time // zero: not draining
}

// start drains with the given bound; a second call keeps the first bound.
func (d *drainer) start(bound time.Duration) api.Drain {
	d.mu.Lock()
	if d.deadline.IsZero() {
		d.deadline = time.Now().Add(bound)
		d.s.Drain()
		d.log.Info("draining: new calls get 503; sbcd exits when the calls have ended", "calls", d.s.ActiveCalls(), "bound", bound)
		go d.wait(d.deadline)
	}
	d.mu.Unlock()
	return d.status()
}

func (d *drainer) wait(deadline time.Time) {
	t := time.NewTicker(d.poll)
	defer t.Stop()
	for range t.C {
		n := d.s.ActiveCalls()
		if n == 0 {
			d.log.Info("drained: no call left, shutting down")
			d.exit()
			return
		}
		if time.Now().After(deadline) {
			d.log.Warn("drain bound reached: shutting down with calls up", "calls", n)
			d.exit()
			return
		}
	}
}

func (d *drainer) status() api.Drain {
	d.mu.Lock()
	defer d.mu.Unlock()
	return api.Drain{Draining: !d.deadline.IsZero(), ActiveCalls: d.s.ActiveCalls(), Deadline: d.deadline}
}

// admin adds GET and POST /api/v1/drain (?timeout=90s) to mux. The POST
// sits behind the same handler chain as every admin endpoint, where the
// dashboard's admin token check goes.
func (d *drainer) admin(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/drain", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, d.status())
	})
	mux.HandleFunc("POST /api/v1/drain", func(w http.ResponseWriter, r *http.Request) {
		bound := drainDefault
		if v := r.URL.Query().Get("timeout"); v != "" {
			b, err := time.ParseDuration(v)
			if err != nil || b <= 0 || b > drainMax {
				http.Error(w, "timeout: want a duration like 90s, at most 24h", http.StatusBadRequest)
				return
			}
			bound = b
		}
		writeJSON(w, http.StatusAccepted, d.start(bound))
	})
}
