package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

func TestLifecycle(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.ShutdownGrace.Std() != 10*time.Second || c.Watchdog.Interval.Std() != time.Second || c.Watchdog.Bound.Std() != 5*time.Second {
		t.Errorf("defaults: grace %v, watchdog %+v", c.ShutdownGrace.Std(), c.Watchdog)
	}
	c, err = config.Parse([]byte(baseYAML + "shutdown_grace: 3s\nwatchdog: {interval: 200ms, bound: 2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.ShutdownGrace.Std() != 3*time.Second || c.Watchdog.Interval.Std() != 200*time.Millisecond || c.Watchdog.Bound.Std() != 2*time.Second {
		t.Errorf("set: grace %v, watchdog %+v", c.ShutdownGrace.Std(), c.Watchdog)
	}
	for y, key := range map[string]string{
		"shutdown_grace: 500ms\n":       "shutdown_grace",
		"shutdown_grace: 1h\n":          "shutdown_grace",
		"watchdog: {interval: 10ms}\n":  "watchdog.interval",
		"watchdog: {bound: 1h}\n":       "watchdog.bound",
		"watchdog: {bound: 1s, x: 1}\n": "x",
	} {
		_, err := config.Parse([]byte(baseYAML + y))
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: %v, want an error naming %s", y, err, key)
		}
	}
}
