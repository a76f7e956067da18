package api

import (
	"net/netip"
	"time"
)

// Ban is one banned source in GET /api/v1/bans (DELETE
// /api/v1/bans/{addr} lifts it).
type Ban struct {
	Addr   netip.Addr `json:"addr"`
	Reason string     `json:"reason"`
	Since  time.Time  `json:"since"`
	Until  time.Time  `json:"until"`
	// Dropped counts the packets dropped from the source while banned (in
	// user space; an XDP mirror counts its own).
	Dropped uint64 `json:"dropped"`
}

// Registration is one contact registered with the SBC's registrar, in
// GET /api/v1/registrations.
type Registration struct {
	Realm string `json:"realm"`
	AOR   string `json:"aor"`
	// Contact is the Contact URI as registered.
	Contact string `json:"contact"`
	// Host, Port and Transport are where calls to the binding are sent.
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	Transport string    `json:"transport"`
	Source    string    `json:"source"` // where the REGISTER came from
	Expires   time.Time `json:"expires"`
}

// Admission is one call admission key in GET /api/v1/admission: its
// calls in progress and its limits.
type Admission struct {
	Key      string  `json:"key"`
	Active   int     `json:"active"`
	MaxCalls int     `json:"max_calls"`
	MaxCPS   float64 `json:"max_cps"`
}
