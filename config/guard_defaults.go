package config

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The protection defaults (docs/guard.md says why each is what it is).
// They apply to every key the file does not set, unless guard.defaults is
// off.
const (
	// A stranger (no known peer of the realm it reaches) is a phone or a
	// scanner: a phone sends a few requests a second at most.
	DefaultSourceRate     = 20
	DefaultSourceMaxCalls = 10
	// A known peer may send the SBC's whole capacity from one address:
	// about 3,500 calls/s on the reference machine (docs/testing.md), each
	// 3-5 requests, doubled for retransmission bursts: the bucket is a
	// backstop above what sbcd can process, never the limit a trunk meets.
	DefaultPeerRate = 50000
	// Strangers over their bucket this often within bans.window, or this
	// often malformed, are banned.
	DefaultRateExcess = 20
	DefaultMalformed  = 10
	// A phone keeps one or two connections (a flow per RFC 5626 outbound);
	// a NATed office a few dozen.
	DefaultSourceMaxConnections = 32
	// A stream must start within 10 s (a ClientHello, a request) and is
	// closed after 10 min of silence: RFC 5626 keepalives come every 2 min.
	DefaultStreamFirstRead = 10 * time.Second
	DefaultStreamIdle      = 10 * time.Minute
)

// protectionDefaults fills the keys the file left unset.
func (g *Guard) protectionDefaults() {
	set := func(key string, apply func()) {
		if !g.given[key] {
			apply()
		}
	}
	set("sources.rate", func() { g.Sources.Rate = DefaultSourceRate })
	set("sources.max_calls", func() { g.Sources.MaxCalls = DefaultSourceMaxCalls })
	set("sources.max_connections", func() { g.Sources.MaxConnections = DefaultSourceMaxConnections })
	set("streams.first_read", func() { g.Streams.FirstRead = Duration(DefaultStreamFirstRead) })
	set("streams.idle", func() { g.Streams.Idle = Duration(DefaultStreamIdle) })
	set("peer_limits.rate", func() { g.PeerLimits.Rate = DefaultPeerRate })
	set("bans.malformed", func() { g.Bans.Malformed = DefaultMalformed })
	set("bans.rate_excess", func() {
		if g.Sources.Rate > 0 {
			g.Bans.RateExcess = DefaultRateExcess
		}
	})
}

// guardKeys returns the dotted keys set under guard in a YAML document
// ("sources.rate", "bans"): which defaults the file overrides. A document
// that does not decode gives none (the strict decode reports it).
func guardKeys(b []byte) map[string]bool {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	out := map[string]bool{}
	var walk func(n *yaml.Node, prefix string, depth int)
	walk = func(n *yaml.Node, prefix string, depth int) {
		if n.Kind != yaml.MappingNode || depth > 2 {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := prefix + n.Content[i].Value
			out[k] = true
			walk(n.Content[i+1], k+".", depth+1)
		}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "guard" {
			walk(root.Content[i+1], "", 0)
		}
	}
	return out
}

// validateClassification checks a realm's accept, unknown, options and
// peers keys.
func (r *RealmGuard) validateClassification(k string, off bool) error {
	if r.Accept != "peers" && r.Accept != "any" {
		return keyErr(k+".accept", "%q must be peers or any", r.Accept)
	}
	if r.Unknown != "auto" && r.Unknown != "drop" && r.Unknown != "reject" {
		return keyErr(k+".unknown", "%q must be auto, drop or reject", r.Unknown)
	}
	if r.Options != "peers" && r.Options != "any" {
		return keyErr(k+".options", "%q must be peers or any", r.Options)
	}
	for j, c := range r.Peers {
		if _, err := ParseCIDR(c); err != nil {
			return keyErr(fmt.Sprintf("%s.peers[%d]", k, j), "%v", err)
		}
	}
	if r.Accept == "any" && r.Auth == nil && !r.AllowUnauthenticated && !off {
		return keyErr(k+".auth", "accept: any takes requests from anyone, so it requires digest auth (configure auth, or say allow_unauthenticated: true)")
	}
	return nil
}

// EffectiveGuard renders the guard as it applies after defaults, for
// sbcd -check-config: what an operator would otherwise have to work out.
func (c *Config) EffectiveGuard() string {
	g := &c.Guard
	var b strings.Builder
	fmt.Fprintf(&b, "guard (defaults %s):\n", g.Defaults)
	onOff := func(r float64, burst int) string {
		if r <= 0 {
			return "off"
		}
		return fmt.Sprintf("%g/s, burst %d", r, burst)
	}
	calls := func(n int) string {
		if n <= 0 {
			return "no limit"
		}
		return fmt.Sprint(n)
	}
	never := func(n int) string {
		if n <= 0 {
			return "never"
		}
		return fmt.Sprintf("after %d in %v", n, g.Bans.Window.Std())
	}
	fmt.Fprintf(&b, "  unknown sources: %s, concurrent calls %s\n", onOff(g.Sources.Rate, g.Sources.Burst), calls(g.Sources.MaxCalls))
	fmt.Fprintf(&b, "  known peers: %s, concurrent calls %s (never banned automatically)\n", onOff(g.PeerLimits.Rate, g.PeerLimits.Burst), calls(g.PeerLimits.MaxCalls))
	fmt.Fprintf(&b, "  TCP/TLS: connections per unknown source %s, per peer %s; first bytes within %v, idle %v (0: unbounded)\n",
		calls(g.Sources.MaxConnections), calls(g.PeerLimits.MaxConnections), g.Streams.FirstRead.Std(), g.Streams.Idle.Std())
	fmt.Fprintf(&b, "  bans (unknown sources, %v): over the rate %s; malformed %s; failed auth %s\n",
		g.Bans.Duration.Std(), never(g.Bans.RateExcess), never(g.Bans.Malformed), never(g.Bans.AuthFailures))
	if s := g.Scanners(); len(s) > 0 {
		fmt.Fprintf(&b, "  scanner User-Agents dropped and banned: %s\n", strings.Join(s, ", "))
	} else {
		b.WriteString("  scanner User-Agents: not checked\n")
	}
	for _, rc := range c.Realms {
		p := g.RealmPolicy(rc.Name)
		accept, unknown, options := "peers", "auto", "peers"
		if g.Off() {
			accept, options = "any", "any"
		}
		if p != nil {
			accept, unknown, options = p.Accept, p.Unknown, p.Options
		}
		var peers []string
		for _, n := range c.StaticPeers(rc.Name) {
			peers = append(peers, n.String())
		}
		for _, t := range c.realmTrunks(rc.Name) {
			peers = append(peers, "trunk "+t)
		}
		if p != nil && p.Registrar != nil {
			peers = append(peers, "registered contacts")
		}
		fmt.Fprintf(&b, "  realm %s: accept %s", rc.Name, accept)
		switch {
		case accept == "peers" && len(peers) == 0:
			b.WriteString(" but no known peer: any source, with unknown sources' limits")
		case accept == "peers":
			fmt.Fprintf(&b, " (others: %s), OPTIONS answered for %s", map[string]string{"auto": "dropped over UDP, 403 over TCP/TLS", "drop": "dropped", "reject": "403"}[unknown], options)
		}
		if len(peers) > 0 {
			fmt.Fprintf(&b, "; known peers %s", strings.Join(peers, ", "))
		}
		if p != nil && p.Auth != nil {
			fmt.Fprintf(&b, "; digest auth for %s", strings.Join(p.Auth.Methods, ", "))
		}
		b.WriteString("\n")
	}
	return b.String()
}
