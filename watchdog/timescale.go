package watchdog

import (
	"fmt"
	"os"
	"strconv"
)

// TimeScaleEnv, set to an integer k > 1 together with TestHooksEnv=1,
// makes sbcd's session-timer clock run k times faster: a lab test can run
// RFC 4028's 90 s floor against real SIP peers in 9 s (k = 10). The values
// on the wire stay the RFC ones; only the waits between them shrink.
// Without TestHooksEnv=1 the value is refused and the clock is real.
const TimeScaleEnv = "EDGESBC_TEST_TIMESCALE"

// maxTimeScale bounds the factor: at 1000 a second lasts 1 ms, about the
// scheduling noise of a loaded machine.
const maxTimeScale = 1000

// TimeScale is the session-timer speed-up the environment asks for: 1
// (real time) unless TimeScaleEnv is set. A value that is set but refused
// (no TestHooksEnv=1, not an integer between 1 and maxTimeScale) is 1 with
// an error saying why, for the log.
func TimeScale() (int, error) {
	v, set := os.LookupEnv(TimeScaleEnv)
	if !set || v == "" {
		return 1, nil
	}
	if os.Getenv(TestHooksEnv) != "1" {
		return 1, fmt.Errorf("%s=%s ignored: a test hook, and %s=1 is not set", TimeScaleEnv, v, TestHooksEnv)
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 1 || k > maxTimeScale {
		return 1, fmt.Errorf("%s=%q ignored: an integer from 1 to %d", TimeScaleEnv, v, maxTimeScale)
	}
	return k, nil
}
