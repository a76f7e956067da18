package main

import (
	"log/slog"

	"github.com/edgesbc/edgesbc/sbc"
	"github.com/edgesbc/edgesbc/watchdog"
)

// scaleTimersForTests applies the session-timer time scale a lab test asks
// for (watchdog.TimeScale: EDGESBC_TEST_HOOKS=1 and
// EDGESBC_TEST_TIMESCALE=k), and says so loudly: a production sbcd never
// runs with it. A value given without the hooks enabled is refused and
// logged, and the clock stays real.
func scaleTimersForTests(log *slog.Logger) {
	k, err := watchdog.TimeScale()
	if err != nil {
		log.Warn("session timer time scale refused", "error", err)
		return
	}
	if k > 1 {
		sbc.ScaleSessionTimers(k)
		log.Warn("test hook: session timers run faster than real time (values on the wire unchanged)", "scale", k)
	}
}
