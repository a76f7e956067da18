package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"time"
)

// HA is the `ha:` section: this node's Raft identity, its voters and, on
// an SBC node, the VIPs it holds while active. Absent: no HA (a single
// node, nothing replicated).
//
//	ha:
//	  node_id: a
//	  bind: 192.0.2.2:7000          # default: this node's peers[].addr
//	  data_dir: /var/lib/edgesbc/ha
//	  peers:                        # every voter, this node and the witness too
//	    - {id: a, addr: 192.0.2.2:7000}
//	    - {id: b, addr: 192.0.2.3:7000}
//	    - {id: wit, addr: 192.0.2.4:7000}
//	  vips:                         # SBC nodes only
//	    - {realm: carrier, iface: ext0, address: 203.0.113.1/24}
//	    - {realm: enterprise, iface: int0, address: 198.51.100.1/24}
type HA struct {
	NodeID  string   `yaml:"node_id"`
	Bind    string   `yaml:"bind"`
	DataDir string   `yaml:"data_dir"`
	Peers   []HAPeer `yaml:"peers"`
	VIPs    []HAVIP  `yaml:"vips"`
	// Raft timing (optional): failover detection takes HeartbeatTimeout
	// to twice that; LeaderLease bounds how long a cut-off leader keeps
	// acting. Defaults 200ms, 200ms, 150ms.
	HeartbeatTimeout Duration `yaml:"heartbeat_timeout"`
	ElectionTimeout  Duration `yaml:"election_timeout"`
	LeaderLease      Duration `yaml:"leader_lease"`
}

// HAPeer is one Raft voter.
type HAPeer struct {
	ID   string `yaml:"id"`
	Addr string `yaml:"addr"`
}

// HAVIP is a realm's service address, held by the active node.
type HAVIP struct {
	Realm string `yaml:"realm"`
	Iface string `yaml:"iface"`
	// Address is the VIP with its prefix length, e.g. 203.0.113.1/24.
	Address string `yaml:"address"`
}

// Prefix is the parsed address (valid after validation).
func (v HAVIP) Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(v.Address)
	return p
}

var (
	ifaceRe  = regexp.MustCompile(`^[A-Za-z0-9_.@:-]{1,15}$`)
	nodeIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// validateHA checks the ha section; sbc says whether this is an SBC node
// (VIPs name its realms) or a witness (no VIPs).
func (c *Config) validateHA(sbcNode bool) error {
	h := c.HA
	if h == nil {
		return nil
	}
	if !nodeIDRe.MatchString(h.NodeID) {
		return keyErr("ha.node_id", "%q must be 1-64 letters, digits, '.', '_' or '-'", h.NodeID)
	}
	if h.DataDir == "" {
		return keyErr("ha.data_dir", "a directory for the Raft log and snapshots is required")
	}
	if h.Bind != "" {
		ap, err := netip.ParseAddrPort(h.Bind)
		if err != nil || ap.Port() == 0 {
			return keyErr("ha.bind", "%q is not ip:port", h.Bind)
		}
	}
	if n := len(h.Peers); n == 2 {
		return keyErr("ha.peers", "two voters cannot elect a leader after losing one: add a witness (3 voters)")
	}
	ids, addrs := map[string]bool{}, map[netip.AddrPort]bool{}
	self := false
	for i, p := range h.Peers {
		k := fmt.Sprintf("ha.peers[%d]", i)
		if !nodeIDRe.MatchString(p.ID) {
			return keyErr(k+".id", "%q must be 1-64 letters, digits, '.', '_' or '-'", p.ID)
		}
		if ids[p.ID] {
			return keyErr(k+".id", "%q listed twice", p.ID)
		}
		ids[p.ID] = true
		ap, err := netip.ParseAddrPort(p.Addr)
		if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() {
			return keyErr(k+".addr", "%q is not ip:port reachable by the other voters", p.Addr)
		}
		if addrs[ap] {
			return keyErr(k+".addr", "%s listed twice", ap)
		}
		addrs[ap] = true
		self = self || p.ID == h.NodeID
	}
	if len(h.Peers) > 0 && !self {
		return keyErr("ha.peers", "node_id %q is not among the peers", h.NodeID)
	}
	if !sbcNode && len(h.VIPs) > 0 {
		return keyErr("ha.vips", "a witness holds no VIPs")
	}
	seen := map[string]bool{}
	for i, v := range h.VIPs {
		k := fmt.Sprintf("ha.vips[%d]", i)
		if c.Realm(v.Realm) == nil {
			return keyErr(k+".realm", "unknown realm %q", v.Realm)
		}
		if !ifaceRe.MatchString(v.Iface) {
			return keyErr(k+".iface", "%q is not an interface name", v.Iface)
		}
		p, err := netip.ParsePrefix(v.Address)
		if err != nil || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return keyErr(k+".address", "%q is not an IPv4 or IPv6 address with prefix length, like 203.0.113.1/24 or 2001:db8:1::1/64", v.Address)
		}
		if seen[p.Addr().String()] {
			return keyErr(k+".address", "%s listed twice", p.Addr())
		}
		seen[p.Addr().String()] = true
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"ha.heartbeat_timeout", h.HeartbeatTimeout}, {"ha.election_timeout", h.ElectionTimeout}, {"ha.leader_lease", h.LeaderLease}} {
		if d.v != 0 && (d.v.Std() < 20*time.Millisecond || d.v.Std() > 10*time.Second) {
			return keyErr(d.key, "must be between 20ms and 10s")
		}
	}
	hb := h.HeartbeatTimeout.Std()
	if hb == 0 {
		hb = 200 * time.Millisecond
	}
	if h.LeaderLease != 0 && h.LeaderLease.Std() > hb {
		return keyErr("ha.leader_lease", "must not exceed heartbeat_timeout (%s)", hb)
	}
	if h.ElectionTimeout != 0 && h.ElectionTimeout.Std() < hb {
		return keyErr("ha.election_timeout", "must not be below heartbeat_timeout (%s)", hb)
	}
	return nil
}

// LoadWitness reads a witness's config: strict like Load, but only the
// ha (required, with peers and without VIPs), admin and log sections
// matter; realms and routes may be absent.
func LoadWitness(path string) (*Config, error) { return loadWith(path, ParseWitness) }

// ParseWitness is LoadWitness on bytes.
func ParseWitness(b []byte) (*Config, error) {
	c, err := decodeStrict(b)
	if err != nil {
		return nil, err
	}
	if c.HA == nil {
		return nil, keyErr("ha", "a witness needs the ha section (node_id, data_dir, peers)")
	}
	if len(c.HA.Peers) == 0 {
		return nil, keyErr("ha.peers", "a witness needs the voters it votes with")
	}
	if err := c.validateHA(false); err != nil {
		return nil, err
	}
	if err := c.validateLifecycle(); err != nil {
		return nil, err
	}
	if err := c.Admin.validate(); err != nil {
		return nil, err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return nil, keyErr("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	return c, nil
}
