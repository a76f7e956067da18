package config

import "time"

// The process's own liveness (the watchdog package):
//
//	shutdown_grace: 10s   # SIGTERM to exit, whatever is stuck; past it a goroutine dump and exit 3
//	watchdog:
//	  interval: 1s        # between checks of the relay workers, the anchor lock and the SIP handlers
//	  bound: 5s           # how long a check may go unanswered before it is a stall

// Watchdog times the stall checks.
type Watchdog struct {
	Interval Duration `yaml:"interval"`
	Bound    Duration `yaml:"bound"`
}

func (c *Config) lifecycleDefaults() {
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = Duration(10 * time.Second)
	}
	if c.Watchdog.Interval == 0 {
		c.Watchdog.Interval = Duration(time.Second)
	}
	if c.Watchdog.Bound == 0 {
		c.Watchdog.Bound = Duration(5 * time.Second)
	}
}

func (c *Config) validateLifecycle() error {
	if g := c.ShutdownGrace.Std(); g < time.Second || g > 10*time.Minute {
		return keyErr("shutdown_grace", "must be between 1s and 10m")
	}
	if i := c.Watchdog.Interval.Std(); i < 100*time.Millisecond || i > time.Minute {
		return keyErr("watchdog.interval", "must be between 100ms and 1m")
	}
	if b := c.Watchdog.Bound.Std(); b < 100*time.Millisecond || b > 5*time.Minute {
		return keyErr("watchdog.bound", "must be between 100ms and 5m")
	}
	return nil
}
