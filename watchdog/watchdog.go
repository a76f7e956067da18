// Package watchdog notices a process that is alive but stuck, and bounds
// its shutdown. A Watchdog runs liveness checks (a relay worker's
// heartbeat, a lock probe, a handler latency bound) every interval, each
// within a bound; a check that fails or does not return is a stall: it is
// logged with a goroutine dump, counted, shown by /healthz, and handed to
// a hook (an HA node gives up leadership). BoundShutdown makes a
// shutdown end within its grace whatever is stuck. The package knows
// nothing of SIP, media or Raft: sbcd wires the checks and the hook.
package watchdog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Check reports whether a component made progress; it should return
// within timeout (the Watchdog treats one that does not as stalled too).
type Check func(timeout time.Duration) error

// Config configures a Watchdog.
type Config struct {
	Interval time.Duration // between check rounds (default 1s)
	Bound    time.Duration // how long a check may take (default 5s)
	Logger   *slog.Logger
	// Registerer takes sbc_watchdog_stalls_total{component} and
	// sbc_watchdog_stalled{component}; nil: no metrics.
	Registerer prometheus.Registerer
	// Dump receives the goroutine dump of each new stall (os.Stderr when
	// nil).
	Dump io.Writer
	// Stalled runs after every round that found a stall, with the stalled
	// components. It must not wait on the checked code.
	Stalled func(components []string)
}

// Watchdog runs the checks; see the package comment.
type Watchdog struct {
	cfg    Config
	checks []*check
	stalls *prometheus.CounterVec
	gauge  *prometheus.GaugeVec

	mu      sync.Mutex
	stalled map[string]string // component -> why
}

type check struct {
	name string
	f    Check
	// Owned by Run: the result channel of a run still going, so that a
	// check stuck past its bound is waited on again, never started twice.
	running chan error
}

// New builds a Watchdog; Add the checks, then Run it.
func New(cfg Config) (*Watchdog, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Bound <= 0 {
		cfg.Bound = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dump == nil {
		cfg.Dump = os.Stderr
	}
	w := &Watchdog{
		cfg: cfg, stalled: map[string]string{},
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_watchdog_stalls_total", Help: "Stalls the watchdog found (a check failed or took longer than its bound), by component.",
		}, []string{"component"}),
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sbc_watchdog_stalled", Help: "1 while the watchdog sees the component stalled.",
		}, []string{"component"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(w.stalls); err != nil {
			return nil, fmt.Errorf("watchdog metrics: %w", err)
		}
		if err := cfg.Registerer.Register(w.gauge); err != nil {
			return nil, fmt.Errorf("watchdog metrics: %w", err)
		}
	}
	return w, nil
}

// Add registers a check under a component name (before Run).
func (w *Watchdog) Add(component string, f Check) {
	w.checks = append(w.checks, &check{name: component, f: f})
	w.stalls.WithLabelValues(component)
	w.gauge.WithLabelValues(component).Set(0)
}

// Run checks every Interval until ctx ends.
func (w *Watchdog) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		w.round()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round runs every check at once and waits at most Bound for them.
func (w *Watchdog) round() {
	for _, c := range w.checks {
		if c.running == nil {
			ch := make(chan error, 1)
			c.running = ch
			go func() { ch <- c.f(w.cfg.Bound) }()
		}
	}
	// A tenth more than the checks get, so that a check's own verdict
	// (which names what is stuck) arrives before the generic one.
	deadline := time.NewTimer(w.cfg.Bound + w.cfg.Bound/10)
	defer deadline.Stop()
	expired := false
	for _, c := range w.checks {
		var err error
		if !expired {
			select {
			case err = <-c.running:
				c.running = nil
			case <-deadline.C:
				expired = true
			}
		}
		if expired {
			select {
			case err = <-c.running:
				c.running = nil
			default:
				err = fmt.Errorf("check did not return within %v", w.cfg.Bound)
			}
		}
		w.verdict(c.name, err)
	}
	if names := w.Stalled(); len(names) > 0 && w.cfg.Stalled != nil {
		w.cfg.Stalled(names)
	}
}

// verdict records one check's outcome: a new stall is logged with a
// goroutine dump and counted.
func (w *Watchdog) verdict(name string, err error) {
	w.mu.Lock()
	_, was := w.stalled[name]
	if err != nil {
		w.stalled[name] = err.Error()
	} else {
		delete(w.stalled, name)
	}
	w.mu.Unlock()
	switch {
	case err != nil && !was:
		w.stalls.WithLabelValues(name).Inc()
		w.gauge.WithLabelValues(name).Set(1)
		w.cfg.Logger.Error("watchdog: stall", "component", name, "bound", w.cfg.Bound, "error", err)
		Dump(w.cfg.Dump, "watchdog: "+name+" stalled")
	case err == nil && was:
		w.gauge.WithLabelValues(name).Set(0)
		w.cfg.Logger.Warn("watchdog: progress again", "component", name)
	}
}

// Stalled lists the stalled components, sorted; nil when healthy.
func (w *Watchdog) Stalled() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var names []string
	for n := range w.stalled {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Healthy reports no stall.
func (w *Watchdog) Healthy() bool { return len(w.Stalled()) == 0 }

// Healthz answers GET /healthz with 503 and the stalled components while
// there is a stall, and passes everything else to next.
func (w *Watchdog) Healthz(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			next.ServeHTTP(rw, r)
			return
		}
		w.mu.Lock()
		var lines []string
		for n, why := range w.stalled {
			lines = append(lines, n+": "+why)
		}
		w.mu.Unlock()
		if len(lines) == 0 {
			next.ServeHTTP(rw, r)
			return
		}
		sort.Strings(lines)
		rw.Header().Set("Content-Type", "text/plain")
		rw.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(rw, "stalled: "+strings.Join(lines, "; ")+"\n")
	})
}

// Dump writes a headline and every goroutine's stack (pprof "goroutine",
// debug=2: the format of an unrecovered panic) to out.
func Dump(out io.Writer, headline string) {
	fmt.Fprintf(out, "=== %s: goroutine dump at %s ===\n", headline, time.Now().UTC().Format(time.RFC3339Nano))
	_ = pprof.Lookup("goroutine").WriteTo(out, 2)
	fmt.Fprintf(out, "=== end of goroutine dump ===\n")
}
