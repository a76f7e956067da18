package watchdog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/syncbuf"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func healthz(t *testing.T, w *Watchdog) (int, string) {
	t.Helper()
	ok := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(rw, "ok\n") })
	rec := httptest.NewRecorder()
	w.Healthz(ok).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	return rec.Code, rec.Body.String()
}

// A failing check and a check stuck past its bound are both stalls: each
// is counted once, dumped once, named by /healthz (503), and handed to
// the Stalled hook every round; a stuck check is not started again while
// it hangs; once both make progress /healthz is 200 again.
func TestWatchdogStallAndRecovery(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var failing atomic.Bool
	failing.Store(true)
	release := make(chan struct{})
	var stuckRuns atomic.Int32
	var hookCalls atomic.Int32
	dump := &syncbuf.Buffer{}
	reg := prometheus.NewRegistry()
	w, err := New(Config{
		Interval: 20 * time.Millisecond, Bound: 100 * time.Millisecond, Registerer: reg, Dump: dump,
		Logger:  slog.New(slog.DiscardHandler),
		Stalled: func(names []string) { hookCalls.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Add("relay", func(time.Duration) error {
		if failing.Load() {
			return errors.New("worker 0 late")
		}
		return nil
	})
	w.Add("sip", func(time.Duration) error {
		stuckRuns.Add(1)
		<-release
		return nil
	})
	w.Add("fine", func(time.Duration) error { return nil })
	if code, _ := healthz(t, w); code != 200 {
		t.Fatalf("before any round: %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for len(w.Stalled()) < 2 {
		if time.Since(start) > time.Second {
			t.Fatalf("stalls not seen after 1s (bound 100ms): %v", w.Stalled())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("stall seen after %v, bound 100ms", took)
	}
	time.Sleep(300 * time.Millisecond) // a few more rounds
	code, body := healthz(t, w)
	if code != 503 || !strings.Contains(body, "relay: worker 0 late") || !strings.Contains(body, "sip: check did not return") || strings.Contains(body, "fine") {
		t.Errorf("healthz while stalled: %d %q", code, body)
	}
	if n := stuckRuns.Load(); n != 1 {
		t.Errorf("stuck check started %d times, want 1", n)
	}
	if hookCalls.Load() < 2 {
		t.Errorf("Stalled hook ran %d times, want every round", hookCalls.Load())
	}
	if n := strings.Count(dump.String(), "goroutine dump at"); n != 2 {
		t.Errorf("%d goroutine dumps, want one per new stall (2)", n)
	}
	if !strings.Contains(dump.String(), "goroutine ") || !strings.Contains(dump.String(), "watchdog.(*Watchdog).round") {
		t.Errorf("dump holds no stacks:\n%.500s", dump.String())
	}
	if v := testutil.ToFloat64(w.stalls.WithLabelValues("relay")); v != 1 {
		t.Errorf("stalls{relay} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(w.gauge.WithLabelValues("sip")); v != 1 {
		t.Errorf("stalled{sip} = %v, want 1", v)
	}

	failing.Store(false)
	close(release)
	for !w.Healthy() {
		if time.Since(start) > 3*time.Second {
			t.Fatalf("still stalled after recovery: %v", w.Stalled())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code, body := healthz(t, w); code != 200 || body != "ok\n" {
		t.Errorf("healthz after recovery: %d %q", code, body)
	}
	if v := testutil.ToFloat64(w.stalls.WithLabelValues("relay")); v != 1 {
		t.Errorf("stalls{relay} after recovery = %v, want 1", v)
	}
	if v := testutil.ToFloat64(w.gauge.WithLabelValues("sip")); v != 0 {
		t.Errorf("stalled{sip} after recovery = %v, want 0", v)
	}
}

// Past the grace after the context ends, the bound writes a goroutine
// dump and exits 3; disarmed in time, it does nothing.
func TestBoundShutdown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	code := make(chan int, 1)
	stop := boundShutdown(ctx, 150*time.Millisecond, out, func(c int) { code <- c })
	defer stop()
	time.Sleep(200 * time.Millisecond)
	select {
	case c := <-code:
		t.Fatalf("exit(%d) before the context ended", c)
	default:
	}
	start := time.Now()
	cancel()
	select {
	case c := <-code:
		took := time.Since(start)
		if c != ExitShutdownOverrun || took < 150*time.Millisecond || took > time.Second {
			t.Errorf("exit(%d) after %v, want exit(3) after 150ms", c, took)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no exit 2s after the context ended")
	}
	if s := out.String(); !strings.Contains(s, "within its grace of 150ms") || !strings.Contains(s, "goroutine ") {
		t.Errorf("no dump:\n%.300s", s)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	stop2 := boundShutdown(ctx2, 100*time.Millisecond, io.Discard, func(c int) { code <- c })
	cancel2()
	time.Sleep(20 * time.Millisecond)
	stop2()
	stop2() // twice is fine
	select {
	case c := <-code:
		t.Errorf("exit(%d) after stop", c)
	case <-time.After(300 * time.Millisecond):
	}
}

// The stall endpoint exists only with EDGESBC_TEST_HOOKS=1.
func TestTestHooksGated(t *testing.T) {
	next := http.NotFoundHandler()
	var got time.Duration
	hooks := map[string]func(time.Duration) error{"relay": func(d time.Duration) error { got = d; return nil }}
	post := func(h http.Handler, q string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/debug/stall?"+q, nil))
		return rec.Code
	}
	t.Setenv(TestHooksEnv, "")
	if c := post(TestHooks(next, hooks), "component=relay&for=1s"); c != 404 || got != 0 {
		t.Fatalf("without %s: %d, hook ran for %v", TestHooksEnv, c, got)
	}
	t.Setenv(TestHooksEnv, "1")
	h := TestHooks(next, hooks)
	for q, want := range map[string]int{
		"component=relay&for=1s":   200,
		"component=disk&for=1s":    400,
		"component=relay&for=-1s":  400,
		"component=relay&for=11m":  400,
		"component=relay&for=soon": 400,
	} {
		if c := post(h, q); c != want {
			t.Errorf("%s: %d, want %d", q, c, want)
		}
	}
	if got != time.Second {
		t.Errorf("hook ran for %v, want 1s", got)
	}
	var hold Hold
	start := time.Now()
	hold.Wait()
	_ = hold.Set(50 * time.Millisecond)
	hold.Wait()
	if e := time.Since(start); e < 50*time.Millisecond || e > 500*time.Millisecond {
		t.Errorf("Hold waited %v, want 50ms", e)
	}
}
