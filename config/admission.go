package config

import "time"

// defaults fills in an admission policy (a realm's or a trunk's); nil is
// no policy.
func (a *AdmissionConfig) defaults() {
	if a != nil && a.RetryAfter == 0 {
		a.RetryAfter = Duration(5 * time.Second)
	}
}

// validate checks an admission policy found under key k
// ("guard.realms[0].admission", "trunks[1].admission").
func (a *AdmissionConfig) validate(k string) error {
	if a == nil {
		return nil
	}
	if a.MaxCalls < 0 || a.MaxCalls > 1e7 {
		return keyErr(k+".max_calls", "must be between 0 (no limit) and 10000000")
	}
	if a.MaxCPS < 0 || a.MaxCPS > 1e6 {
		return keyErr(k+".max_cps", "must be between 0 (no limit) and 1000000")
	}
	if d := a.RetryAfter.Std(); d < time.Second || d > time.Hour {
		return keyErr(k+".retry_after", "must be between 1s and 1h")
	}
	return nil
}
