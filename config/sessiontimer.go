package config

import (
	"fmt"
	"time"
)

// SessionTimer is a realm's RFC 4028 session timer policy
// (realms[].session_timer). The SBC negotiates the timer on each leg on
// its own: as the UAS toward a caller in this realm, as the UAC toward a
// callee in it.
type SessionTimer struct {
	// Expires is the interval the SBC asks for, or grants, on a leg in this
	// realm when the peer asks for none, so no call lives forever without
	// a refresh; it also caps what a peer may ask for. 0 turns the default
	// off: a peer that asks for a timer still gets one. Absent: 1800s.
	Expires *Duration `yaml:"expires"`
	// MinSE is the shortest interval the SBC accepts (a request asking for
	// less gets 422 with Min-SE) and the Min-SE it sends. Absent: 90s, the
	// least RFC 4028 4 allows.
	MinSE Duration `yaml:"min_se"`
}

// Session timer bounds: RFC 4028 4 makes 90 s the least Min-SE; a day is
// beyond any real trunk's interval and keeps a typo from meaning "never".
const (
	DefaultSessionExpires = 1800 * time.Second
	MinSessionExpires     = 90 * time.Second
	MaxSessionExpires     = 24 * time.Hour
)

// ExpiresOrDefault is the interval in effect (0: no default).
func (s SessionTimer) ExpiresOrDefault() time.Duration {
	if s.Expires == nil {
		return DefaultSessionExpires
	}
	return s.Expires.Std()
}

func (s *SessionTimer) applyDefaults() {
	if s.MinSE == 0 {
		s.MinSE = Duration(MinSessionExpires)
	}
}

func (s SessionTimer) validate(key string) error {
	min := s.MinSE.Std()
	if min < MinSessionExpires || min > MaxSessionExpires || min%time.Second != 0 {
		return keyErr(key+".min_se", "%v must be whole seconds between 90s (RFC 4028 4) and 24h", min)
	}
	e := s.ExpiresOrDefault()
	if e == 0 {
		return nil
	}
	if e < min || e > MaxSessionExpires || e%time.Second != 0 {
		return keyErr(key+".expires", "%v must be 0 (no default) or whole seconds between min_se (%v) and 24h", e, min)
	}
	return nil
}

// validateSessionTimers checks every realm's session_timer.
func (c *Config) validateSessionTimers() error {
	for i, r := range c.Realms {
		if err := r.SessionTimer.validate(fmt.Sprintf("realms[%d].session_timer", i)); err != nil {
			return err
		}
	}
	return nil
}
