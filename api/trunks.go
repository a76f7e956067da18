package api

import "time"

// Trunk is one trunk in GET /api/v1/trunks: its targets' health and its
// registration.
type Trunk struct {
	Name         string             `json:"name"`
	Realm        string             `json:"realm"`
	Up           bool               `json:"up"`
	Targets      []TrunkTarget      `json:"targets"`
	DNSError     string             `json:"dns_error,omitempty"`
	Registration *TrunkRegistration `json:"registration,omitempty"`
}

// TrunkTarget is one resolved target of a trunk and its OPTIONS health.
type TrunkTarget struct {
	Target    string    `json:"target"`
	From      string    `json:"from"`
	State     string    `json:"state"` // up, down, unknown (not probed yet: routed to)
	Since     time.Time `json:"since,omitzero"`
	LastProbe time.Time `json:"last_probe,omitzero"`
	LastCode  int       `json:"last_code"`
	Probes    uint64    `json:"probes"`
	Failures  uint64    `json:"failures"`
}

// TrunkRegistration is a trunk's registration with its registrar.
type TrunkRegistration struct {
	State     string    `json:"state"`
	AOR       string    `json:"aor"`
	Registrar string    `json:"registrar,omitempty"`
	Expires   int       `json:"expires"` // granted, seconds
	LastCode  int       `json:"last_code"`
	LastError string    `json:"last_error,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Next      time.Time `json:"next,omitzero"` // next REGISTER (refresh or retry)
	Successes uint64    `json:"successes"`
	Failures  uint64    `json:"failures"`
}
