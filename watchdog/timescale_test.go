package watchdog

import "testing"

// The session-timer time scale is a test hook: without
// EDGESBC_TEST_HOOKS=1 any value is refused (real time, and a reason to
// log); with it, an integer from 1 to 1000 is taken and nothing else.
func TestTimeScaleGated(t *testing.T) {
	for _, c := range []struct {
		hooks, scale string
		want         int
		refused      bool
	}{
		{"", "", 1, false},
		{"", "10", 1, true},
		{"0", "10", 1, true},
		{"true", "10", 1, true},
		{"1", "", 1, false},
		{"1", "10", 10, false},
		{"1", "1", 1, false},
		{"1", "1000", 1000, false},
		{"1", "1001", 1, true},
		{"1", "0", 1, true},
		{"1", "-5", 1, true},
		{"1", "2.5", 1, true},
		{"1", "fast", 1, true},
	} {
		t.Setenv(TestHooksEnv, c.hooks)
		t.Setenv(TimeScaleEnv, c.scale)
		k, err := TimeScale()
		if k != c.want || (err != nil) != c.refused {
			t.Errorf("%s=%q %s=%q: %d, %v; want %d, refused %v", TestHooksEnv, c.hooks, TimeScaleEnv, c.scale, k, err, c.want, c.refused)
		}
	}
}
