package api

// Flows is GET /api/v1/flows: the kernel path in use and every flow.
type Flows struct {
	// Datapath is "xdp" or "tc" when the kernel program is loaded, else
	// "userspace"; "none" when media is not anchored.
	Datapath string `json:"datapath"`
	Flows    []Flow `json:"flows"`
}

// Flow is one flow of a stream: packets arriving at Local from the side's
// peer, and where they go.
type Flow struct {
	Local    string `json:"local"`
	Side     string `json:"side"`           // "a" or "b": whose packets arrive at Local
	Kind     string `json:"kind"`           // "rtp" or "rtcp" ("rtp" carries both with rtcp-mux)
	Path     string `json:"path"`           // "xdp", "tc" or "userspace"
	From     string `json:"from,omitempty"` // kernel flows: the only source forwarded (the latched peer)
	Src      string `json:"src"`            // the SBC's address packets leave from
	Dst      string `json:"dst,omitempty"`
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	LastSeen string `json:"last_seen,omitempty"` // RFC 3339, UTC
}

// PathUserSpace is Flow.Path (and Stream.Path) for media relayed in user
// space rather than by the kernel program.
const PathUserSpace = "userspace"
