package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

func TestOverload(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Overload
	if !o.On() || o.MaxInflight != 10000 || o.MinInflight != 20 || o.TargetDelay.Std() != 20*time.Millisecond || o.RetryAfter.Std() != time.Second || o.MaxHeapMiB != 4096 {
		t.Errorf("defaults %+v (on %v), want on, 10000, 20, 20ms, 1s, 4096 MiB", o, o.On())
	}
	c, err = config.Parse([]byte(baseYAML + "overload: {enabled: false, max_inflight: 10, min_inflight: 2, target_delay: 5ms, retry_after: 3s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	o = c.Overload
	if o.On() || o.MaxInflight != 10 || o.MinInflight != 2 || o.TargetDelay.Std() != 5*time.Millisecond || o.RetryAfter.Std() != 3*time.Second {
		t.Errorf("set %+v (on %v)", o, o.On())
	}
	if c, err := config.Parse([]byte(baseYAML + "overload: {max_inflight: 5}\n")); err != nil || c.Overload.MinInflight != 5 {
		t.Errorf("max_inflight 5 alone: %v, min_inflight %d, want 5", err, c.Overload.MinInflight)
	}
	for y, key := range map[string]string{
		"overload: {max_inflight: -1}\n":                   "overload.max_inflight",
		"overload: {max_inflight: 2000000}\n":              "overload.max_inflight",
		"overload: {max_inflight: 10, min_inflight: 11}\n": "overload.min_inflight",
		"overload: {min_inflight: -3}\n":                   "overload.min_inflight",
		"overload: {target_delay: 100us}\n":                "overload.target_delay",
		"overload: {target_delay: 2s}\n":                   "overload.target_delay",
		"overload: {retry_after: 1500ms}\n":                "overload.retry_after",
		"overload: {retry_after: 2h}\n":                    "overload.retry_after",
		"overload: {max_inflights: 3}\n":                   "max_inflights",
	} {
		_, err := config.Parse([]byte(baseYAML + y))
		if !errors.Is(err, config.ErrInvalid) && !strings.Contains(y, "inflights") || err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: %v, want an error naming %s", y, err, key)
		}
	}
}
