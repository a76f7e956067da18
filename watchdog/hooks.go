package watchdog

import (
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// TestHooksEnv, set to "1", makes TestHooks serve POST /debug/stall: the
// tests of the watchdog and of bounded shutdown need a process that is
// really stuck. Without it the endpoint does not exist.
const TestHooksEnv = "EDGESBC_TEST_HOOKS"

// maxStall bounds a test stall.
const maxStall = 10 * time.Minute

// TestHooks adds POST /debug/stall?component=NAME&for=DURATION in front
// of next when the environment has TestHooksEnv=1, and returns next
// unchanged otherwise. stall maps a component to what makes it stuck
// for the given time; the call must not wait for the stall itself.
func TestHooks(next http.Handler, stall map[string]func(time.Duration) error) http.Handler {
	if os.Getenv(TestHooksEnv) != "1" {
		return next
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /debug/stall", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("component")
		f, ok := stall[name]
		if !ok {
			http.Error(w, fmt.Sprintf("unknown component %q", name), http.StatusBadRequest)
			return
		}
		d, err := time.ParseDuration(r.URL.Query().Get("for"))
		if err != nil || d <= 0 || d > maxStall {
			http.Error(w, "for: a duration between 0 and "+maxStall.String(), http.StatusBadRequest)
			return
		}
		if err := f(d); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		_, _ = fmt.Fprintf(w, "%s stalled for %v\n", name, d)
	})
	mux.Handle("/", next)
	return mux
}

// Hold is a wait a test hook arms (Set) and a code path then sits out
// (Wait): the shutdown test's stuck shutdown. The zero value waits for
// nothing.
type Hold struct{ d atomic.Int64 }

// Set arms the hold for d; it never fails (a TestHooks stall func).
func (h *Hold) Set(d time.Duration) error {
	h.d.Store(int64(d))
	return nil
}

// Wait sleeps for the armed time, if any.
func (h *Hold) Wait() {
	if d := time.Duration(h.d.Load()); d > 0 {
		time.Sleep(d)
	}
}
