package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

func TestSessionTimerDefaults(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	st := c.Realms[0].SessionTimer
	if got := st.ExpiresOrDefault(); got != 1800*time.Second {
		t.Errorf("default expires %v, want 1800s", got)
	}
	if st.MinSE.Std() != 90*time.Second {
		t.Errorf("default min_se %v, want 90s", st.MinSE.Std())
	}
}

func TestSessionTimerValid(t *testing.T) {
	for _, tc := range []struct {
		st           string
		expires, min time.Duration
	}{
		{"{expires: 0s}", 0, 90 * time.Second}, // the default off
		{"{expires: 90s}", 90 * time.Second, 90 * time.Second},
		{"{expires: 600s, min_se: 120s}", 600 * time.Second, 120 * time.Second},
		{"{expires: 24h, min_se: 24h}", 24 * time.Hour, 24 * time.Hour},
		{"{min_se: 300s}", 1800 * time.Second, 300 * time.Second},
	} {
		y := strings.Replace(baseYAML, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    session_timer: "+tc.st+"\n", 1)
		c, err := config.Parse([]byte(y))
		if err != nil {
			t.Errorf("%s: %v", tc.st, err)
			continue
		}
		st := c.Realms[1].SessionTimer
		if st.ExpiresOrDefault() != tc.expires || st.MinSE.Std() != tc.min {
			t.Errorf("%s: expires %v min_se %v, want %v %v", tc.st, st.ExpiresOrDefault(), st.MinSE.Std(), tc.expires, tc.min)
		}
	}
}

func TestSessionTimerInvalid(t *testing.T) {
	for _, tc := range []struct{ st, key, why string }{
		{"{expires: 89s}", "realms[1].session_timer.expires", "between min_se"},
		{"{expires: 100s, min_se: 120s}", "realms[1].session_timer.expires", "between min_se"},
		{"{expires: 25h}", "realms[1].session_timer.expires", "24h"},
		{"{expires: 1800500ms}", "realms[1].session_timer.expires", "whole seconds"},
		{"{min_se: 1s}", "realms[1].session_timer.min_se", "90s"},
		{"{min_se: 89s}", "realms[1].session_timer.min_se", "RFC 4028"},
		{"{min_se: 90500ms}", "realms[1].session_timer.min_se", "whole seconds"},
		{"{expires: -1s}", "realms[1].session_timer.expires", "between"},
		{"{expire: 90s}", "expire", "not found"},
		{"{expires: soon}", "soon", "not a duration"},
	} {
		y := strings.Replace(baseYAML, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    session_timer: "+tc.st+"\n", 1)
		_, err := config.Parse([]byte(y))
		if err == nil {
			t.Errorf("%s: accepted", tc.st)
			continue
		}
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: error %q, want %s and %q", tc.st, err, tc.key, tc.why)
		}
	}
}
