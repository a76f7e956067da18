package api

import "time"

// ConfigStatus is GET /api/v1/config: the config file in service and the
// reloads tried since start.
type ConfigStatus struct {
	Path string `json:"path"` // "" for the embedded default
	// Hash is the SHA-256 (hex) of the file in service, as sha256sum
	// prints it.
	Hash           string    `json:"hash"`
	LoadedAt       time.Time `json:"loaded_at"`
	Reloads        int       `json:"reloads"`         // applied
	ReloadFailures int       `json:"reload_failures"` // refused
	// LastResult is "ok", "refused" or "" before any reload; LastError
	// names the key that made it refused.
	LastResult string    `json:"last_result,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	LastReload time.Time `json:"last_reload,omitzero"`
}

// Reload is the answer to POST /api/v1/config/reload (200 applied, 409
// refused, the running config staying in service).
type Reload struct {
	Applied bool   `json:"applied"`
	Error   string `json:"error,omitempty"`
	// Changed are the keys that differ from the running config.
	Changed []string     `json:"changed,omitempty"`
	Config  ConfigStatus `json:"config"`
}

// Drain is POST and GET /api/v1/drain: new calls get 503; sbcd exits once
// ActiveCalls is 0 or at Deadline, whichever comes first.
type Drain struct {
	Draining    bool      `json:"draining"`
	ActiveCalls int       `json:"active_calls"`
	Deadline    time.Time `json:"deadline,omitzero"`
}
