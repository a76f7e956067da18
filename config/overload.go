package config

import "time"

// Overload is sbcd's own overload control (sbc/overload.go): past its
// capacity new INVITEs are answered 503 with Retry-After at once, while
// in-dialog requests and established calls go on.
//
//	overload:
//	  enabled: true        # absent: on
//	  max_inflight: 10000  # call setups in progress at most, whatever the load
//	  min_inflight: 20     # the adaptive limit never goes below this
//	  target_delay: 20ms   # scheduling delay above which the limit shrinks
//	  retry_after: 1s      # Retry-After on the 503 (whole seconds)
//	  max_heap_mib: 4096   # live heap above which every new INVITE is refused
type Overload struct {
	Enabled     *bool    `yaml:"enabled"`
	MaxInflight int      `yaml:"max_inflight"`
	MinInflight int      `yaml:"min_inflight"`
	TargetDelay Duration `yaml:"target_delay"`
	RetryAfter  Duration `yaml:"retry_after"`
	// MaxHeapMiB bounds the memory that calls and sipgo's finished
	// transactions (kept sip.transaction_linger, ~25 KB a call) hold
	// under a flood: past it new calls wait until the linger frees some.
	MaxHeapMiB int `yaml:"max_heap_mib"`
}

// On says whether overload control runs (absent: yes).
func (o Overload) On() bool { return o.Enabled == nil || *o.Enabled }

func (c *Config) overloadDefaults() {
	o := &c.Overload
	if o.MaxInflight == 0 {
		o.MaxInflight = 10000
	}
	if o.MinInflight == 0 {
		o.MinInflight = min(20, o.MaxInflight)
	}
	if o.TargetDelay == 0 {
		o.TargetDelay = Duration(20 * time.Millisecond)
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = Duration(time.Second)
	}
	if o.MaxHeapMiB == 0 {
		o.MaxHeapMiB = 4096
	}
}

func (c *Config) validateOverload() error {
	o := c.Overload
	if o.MaxInflight < 1 || o.MaxInflight > 1000000 {
		return keyErr("overload.max_inflight", "%d must be between 1 and 1000000", o.MaxInflight)
	}
	if o.MinInflight < 1 || o.MinInflight > o.MaxInflight {
		return keyErr("overload.min_inflight", "%d must be between 1 and max_inflight (%d)", o.MinInflight, o.MaxInflight)
	}
	if d := o.TargetDelay.Std(); d < time.Millisecond || d > time.Second {
		return keyErr("overload.target_delay", "%v must be between 1ms and 1s", d)
	}
	if r := o.RetryAfter.Std(); r < time.Second || r > time.Hour || r%time.Second != 0 {
		return keyErr("overload.retry_after", "%v must be whole seconds between 1s and 1h", r)
	}
	if o.MaxHeapMiB < 1 || o.MaxHeapMiB > 1<<20 {
		return keyErr("overload.max_heap_mib", "%d must be between 1 and 1048576", o.MaxHeapMiB)
	}
	return nil
}
