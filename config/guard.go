package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Guard is the protection policy: per-source request limits and bans
// (flood and scanner defence), peer classification and, per realm, the
// ACL, digest auth, the registrar and call admission. Protection is on by
// default (guard_defaults.go, docs/guard.md); `defaults: off` turns off
// every default that the file does not set itself.
type Guard struct {
	// Defaults is "on" (the default) or "off".
	Defaults string `yaml:"defaults"`
	// Sources limits requests from sources that are no known peer of the
	// realm they reach (strict); Rate 0 turns it off.
	Sources SourceLimits `yaml:"sources"`
	// PeerLimits limits requests from each known peer (route and trunk
	// targets, configured peers, registered contacts): sized to the SBC's
	// capacity, so a carrier's whole trunk from one address never trips
	// it. Rate 0 turns it off.
	PeerLimits PeerLimits `yaml:"peer_limits"`
	Bans       BanPolicy  `yaml:"bans"`
	// Streams bound TCP and TLS connections' silence.
	Streams StreamLimits `yaml:"streams"`
	// ScannerUserAgents are substrings (case-insensitive) of User-Agent
	// values whose requests are dropped silently and whose source is
	// banned. Default: friendly-scanner, sipvicious, sipcli. An empty list
	// turns the check off.
	ScannerUserAgents *[]string `yaml:"scanner_user_agents"`
	// Trusted are source networks the operator vouches for (peers on
	// private links): responses to them may be larger than their requests.
	// Any other source must first prove its address (answer a digest
	// challenge, ACK a 2xx) before it gets a response larger than its
	// request over UDP.
	Trusted []string `yaml:"trusted"`
	// Realms holds the per-realm policy, by realm name.
	Realms []RealmGuard `yaml:"realms"`

	// given holds the dotted keys the file sets under guard (so that an
	// explicit 0 is not replaced by a default).
	given map[string]bool
}

// SourceLimits is the per-source token bucket on requests.
type SourceLimits struct {
	Rate  float64 `yaml:"rate"`  // requests per second, refill
	Burst int     `yaml:"burst"` // bucket size; default 2*rate
	// MaxSources bounds the table of tracked sources; past it, new
	// sources share one bucket. Default 65536.
	MaxSources int `yaml:"max_sources"`
	// MaxCalls bounds the calls (in setup or up) one source may hold at
	// once; 0: no limit.
	MaxCalls int `yaml:"max_calls"`
	// MaxConnections bounds the TCP and TLS connections one source holds
	// open to a realm; 0: no limit.
	MaxConnections int `yaml:"max_connections"`
}

// StreamLimits bound the silence of TCP and TLS connections peers open.
type StreamLimits struct {
	// FirstRead: a connection's first bytes (a TLS ClientHello, a
	// request) must come within it; 0: unbounded.
	FirstRead Duration `yaml:"first_read"`
	// Idle closes a connection that sent nothing for this long (CRLF
	// keepalives count, RFC 5626 4.4.1); 0: never.
	Idle Duration `yaml:"idle"`
}

// PeerLimits is the per-source token bucket and call bound of known peers.
type PeerLimits struct {
	Rate           float64 `yaml:"rate"`
	Burst          int     `yaml:"burst"`
	MaxCalls       int     `yaml:"max_calls"`
	MaxConnections int     `yaml:"max_connections"`
}

// BanPolicy says when a source is banned and for how long.
type BanPolicy struct {
	Duration Duration `yaml:"duration"` // default 5m
	// RateExcess bans a source once this many of its requests were over
	// its bucket within Window (0: never; default 20 when sources.rate is set).
	RateExcess int `yaml:"rate_excess"`
	// AuthFailures bans after this many failed digest answers within
	// Window (0: never; default 5 where auth is configured).
	AuthFailures int `yaml:"auth_failures"`
	// Malformed bans after this many malformed messages within Window
	// (0, the default: never).
	Malformed int      `yaml:"malformed"`
	Window    Duration `yaml:"window"` // default 60s
	// Max bounds the ban list. Default 65536.
	Max int `yaml:"max"`
}

// RealmGuard is one realm's policy. Each part is optional.
type RealmGuard struct {
	Realm string `yaml:"realm"`
	// Accept is "peers" (the default: dialog-creating requests only from
	// the realm's known peers) or "any" (phones from anywhere; then digest
	// auth is required unless AllowUnauthenticated).
	Accept string `yaml:"accept"`
	// Peers are more known peer networks of the realm.
	Peers []string `yaml:"peers"`
	// Unknown is what a refused request from an unknown source gets:
	// auto (the default: nothing over UDP, 403 over TCP and TLS), drop or
	// reject (403).
	Unknown string `yaml:"unknown"`
	// Options is who gets an answer to an out-of-dialog OPTIONS: peers
	// (the default) or any.
	Options string `yaml:"options"`
	// AllowUnauthenticated lets an accept: any realm run without auth.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`

	ACL       *ACLConfig       `yaml:"acl"`
	Auth      *AuthConfig      `yaml:"auth"`
	Registrar *RegistrarConfig `yaml:"registrar"`
	Admission *AdmissionConfig `yaml:"admission"`
}

// ACLConfig is the list of source networks allowed to send INVITE and
// REGISTER into a realm; others get 403 (action reject) or nothing (drop).
type ACLConfig struct {
	Allow  []string `yaml:"allow"`
	Action string   `yaml:"action"` // reject (default) or drop
}

// AuthConfig is inbound digest authentication (RFC 3261 22, RFC 8760).
type AuthConfig struct {
	// Realm is the digest realm; default the realm's advertised address.
	Realm string `yaml:"realm"`
	// Methods challenged; default [INVITE, REGISTER].
	Methods []string `yaml:"methods"`
	// Algorithms offered, one challenge each; default [SHA-256, MD5].
	Algorithms []string   `yaml:"algorithms"`
	Users      []AuthUser `yaml:"users"`
	// NonceTTL is how long a nonce stays valid; default 5m.
	NonceTTL Duration `yaml:"nonce_ttl"`
}

// AuthUser is one set of credentials.
type AuthUser struct {
	Name     string `yaml:"name"`
	Password string `yaml:"password"`
}

// RegistrarConfig makes the SBC the registrar of the realm: its PBX
// registers, and calls routed into the realm go to the registered contact.
type RegistrarConfig struct {
	// AOR, when set, is the user whose bindings take every call routed
	// into the realm (the PBX's trunk registration); otherwise the
	// request-URI user's bindings are used.
	AOR            string   `yaml:"aor"`
	MaxBindings    int      `yaml:"max_bindings"`    // default 1000
	MinExpires     Duration `yaml:"min_expires"`     // default 60s
	MaxExpires     Duration `yaml:"max_expires"`     // default 1h
	DefaultExpires Duration `yaml:"default_expires"` // default 1h
}

// AdmissionConfig limits the calls of a realm (guard.realms[]) or of a
// trunk (trunks[], both directions).
type AdmissionConfig struct {
	MaxCalls   int      `yaml:"max_calls"`   // concurrent; 0: no limit
	MaxCPS     float64  `yaml:"max_cps"`     // new calls per second; 0: no limit
	RetryAfter Duration `yaml:"retry_after"` // in the 503; default 5s
}

// DefaultScannerUserAgents are dropped and banned unless configured otherwise.
var DefaultScannerUserAgents = []string{"friendly-scanner", "sipvicious", "sipcli"}

// Scanners is the effective scanner User-Agent list.
func (g *Guard) Scanners() []string {
	if g.ScannerUserAgents == nil {
		if g.Off() {
			return nil
		}
		return DefaultScannerUserAgents
	}
	return *g.ScannerUserAgents
}

// Off says whether the file turned the protection defaults off.
func (g *Guard) Off() bool { return g.Defaults == "off" }

// RealmPolicy returns the policy of a realm, or nil.
func (g *Guard) RealmPolicy(name string) *RealmGuard {
	for i := range g.Realms {
		if g.Realms[i].Realm == name {
			return &g.Realms[i]
		}
	}
	return nil
}

func (g *Guard) applyDefaults() {
	if g.Defaults == "" {
		g.Defaults = "on"
	}
	if !g.Off() {
		g.protectionDefaults() // guard_defaults.go
	}
	if g.Sources.Rate > 0 && g.Sources.Burst == 0 {
		g.Sources.Burst = int(2*g.Sources.Rate + 0.5)
	}
	if g.PeerLimits.Rate > 0 && g.PeerLimits.Burst == 0 {
		g.PeerLimits.Burst = int(2*g.PeerLimits.Rate + 0.5)
	}
	if g.Sources.MaxSources == 0 {
		g.Sources.MaxSources = 65536
	}
	if g.Bans.Duration == 0 {
		g.Bans.Duration = Duration(5 * time.Minute)
	}
	if g.Bans.Window == 0 {
		g.Bans.Window = Duration(time.Minute)
	}
	if g.Bans.Max == 0 {
		g.Bans.Max = 65536
	}
	if g.Sources.Rate > 0 && g.Bans.RateExcess == 0 && !g.given["bans.rate_excess"] {
		g.Bans.RateExcess = 20
	}
	anyAuth := false
	for i := range g.Realms {
		r := &g.Realms[i]
		if r.ACL != nil && r.ACL.Action == "" {
			r.ACL.Action = "reject"
		}
		if r.Accept == "" {
			r.Accept = "peers"
			if g.Off() {
				r.Accept = "any"
			}
		}
		if r.Unknown == "" {
			r.Unknown = "auto"
		}
		if r.Options == "" {
			r.Options = "peers"
			if g.Off() {
				r.Options = "any"
			}
		}
		if a := r.Auth; a != nil {
			anyAuth = true
			if len(a.Methods) == 0 {
				a.Methods = []string{"INVITE", "REGISTER"}
			}
			if len(a.Algorithms) == 0 {
				a.Algorithms = []string{"SHA-256", "MD5"}
			}
			if a.NonceTTL == 0 {
				a.NonceTTL = Duration(5 * time.Minute)
			}
		}
		if g := r.Registrar; g != nil {
			if g.MaxBindings == 0 {
				g.MaxBindings = 1000
			}
			if g.MinExpires == 0 {
				g.MinExpires = Duration(time.Minute)
			}
			if g.MaxExpires == 0 {
				g.MaxExpires = Duration(time.Hour)
			}
			if g.DefaultExpires == 0 {
				g.DefaultExpires = Duration(time.Hour)
			}
		}
		r.Admission.defaults()
	}
	if anyAuth && g.Bans.AuthFailures == 0 {
		g.Bans.AuthFailures = 5
	}
}

func (g *Guard) validate(realms map[string]bool) error {
	if g.Defaults != "on" && g.Defaults != "off" {
		return keyErr("guard.defaults", "%q must be on or off", g.Defaults)
	}
	if g.Sources.Rate < 0 || g.Sources.Rate > 1e6 {
		return keyErr("guard.sources.rate", "must be between 0 and 1000000 requests/s")
	}
	if g.PeerLimits.Rate < 0 || g.PeerLimits.Rate > 1e7 {
		return keyErr("guard.peer_limits.rate", "must be between 0 and 10000000 requests/s")
	}
	if g.PeerLimits.Burst < 0 || g.PeerLimits.Rate > 0 && g.PeerLimits.Burst < 1 {
		return keyErr("guard.peer_limits.burst", "must be at least 1")
	}
	if g.Sources.MaxCalls < 0 || g.Sources.MaxCalls > 1e6 {
		return keyErr("guard.sources.max_calls", "must be between 0 (no limit) and 1000000")
	}
	if g.PeerLimits.MaxCalls < 0 || g.PeerLimits.MaxCalls > 1e7 {
		return keyErr("guard.peer_limits.max_calls", "must be between 0 (no limit) and 10000000")
	}
	if g.Sources.MaxConnections < 0 || g.Sources.MaxConnections > 1e6 {
		return keyErr("guard.sources.max_connections", "must be between 0 (no limit) and 1000000")
	}
	if g.PeerLimits.MaxConnections < 0 || g.PeerLimits.MaxConnections > 1e6 {
		return keyErr("guard.peer_limits.max_connections", "must be between 0 (no limit) and 1000000")
	}
	if d := g.Streams.FirstRead.Std(); d < 0 || d > time.Hour {
		return keyErr("guard.streams.first_read", "must be between 0 (unbounded) and 1h")
	}
	if d := g.Streams.Idle.Std(); d < 0 || d > 24*time.Hour {
		return keyErr("guard.streams.idle", "must be between 0 (never) and 24h")
	}
	if g.Sources.Burst < 0 || g.Sources.Rate > 0 && g.Sources.Burst < 1 {
		return keyErr("guard.sources.burst", "must be at least 1")
	}
	if g.Sources.MaxSources < 16 || g.Sources.MaxSources > 1<<24 {
		return keyErr("guard.sources.max_sources", "must be between 16 and 16777216")
	}
	if d := g.Bans.Duration.Std(); d < time.Second || d > 7*24*time.Hour {
		return keyErr("guard.bans.duration", "must be between 1s and 168h")
	}
	if d := g.Bans.Window.Std(); d < time.Second || d > 24*time.Hour {
		return keyErr("guard.bans.window", "must be between 1s and 24h")
	}
	for _, f := range []struct {
		k string
		v int
	}{{"rate_excess", g.Bans.RateExcess}, {"auth_failures", g.Bans.AuthFailures}, {"malformed", g.Bans.Malformed}} {
		if f.v < 0 || f.v > 1e6 {
			return keyErr("guard.bans."+f.k, "must be between 0 (never) and 1000000")
		}
	}
	if g.Bans.Max < 16 || g.Bans.Max > 1<<24 {
		return keyErr("guard.bans.max", "must be between 16 and 16777216")
	}
	for i, s := range g.Scanners() {
		if s == "" || len(s) > 64 || strings.ContainsAny(s, "\r\n") {
			return keyErr(fmt.Sprintf("guard.scanner_user_agents[%d]", i), "must be one non-empty line of at most 64 characters")
		}
	}
	for i, c := range g.Trusted {
		if _, err := ParseCIDR(c); err != nil {
			return keyErr(fmt.Sprintf("guard.trusted[%d]", i), "%v", err)
		}
	}
	seen := map[string]bool{}
	for i := range g.Realms {
		r := &g.Realms[i]
		k := fmt.Sprintf("guard.realms[%d]", i)
		if !realms[r.Realm] {
			return keyErr(k+".realm", "unknown realm %q", r.Realm)
		}
		if seen[r.Realm] {
			return keyErr(k+".realm", "realm %q has two policies", r.Realm)
		}
		seen[r.Realm] = true
		if err := r.validateClassification(k, g.Off()); err != nil {
			return err
		}
		if a := r.ACL; a != nil {
			if len(a.Allow) == 0 {
				return keyErr(k+".acl.allow", "list at least one CIDR (or remove the acl)")
			}
			for j, c := range a.Allow {
				if _, err := ParseCIDR(c); err != nil {
					return keyErr(fmt.Sprintf("%s.acl.allow[%d]", k, j), "%v", err)
				}
			}
			if a.Action != "reject" && a.Action != "drop" {
				return keyErr(k+".acl.action", "%q must be reject or drop", a.Action)
			}
		}
		if a := r.Auth; a != nil {
			if strings.ContainsAny(a.Realm, "\"\\\r\n") || len(a.Realm) > 128 {
				return keyErr(k+".auth.realm", "must be at most 128 characters without quotes, backslashes or line breaks")
			}
			for j, m := range a.Methods {
				if m != "INVITE" && m != "REGISTER" {
					return keyErr(fmt.Sprintf("%s.auth.methods[%d]", k, j), "%q: only INVITE and REGISTER are challenged", m)
				}
			}
			for j, al := range a.Algorithms {
				if al != "MD5" && al != "SHA-256" {
					return keyErr(fmt.Sprintf("%s.auth.algorithms[%d]", k, j), "%q must be MD5 or SHA-256", al)
				}
			}
			if len(a.Users) == 0 {
				return keyErr(k+".auth.users", "at least one user is required")
			}
			names := map[string]bool{}
			for j, u := range a.Users {
				uk := fmt.Sprintf("%s.auth.users[%d]", k, j)
				if u.Name == "" || len(u.Name) > 64 || strings.ContainsAny(u.Name, "\"\\\r\n:") {
					return keyErr(uk+".name", "must be 1-64 characters without quotes, backslashes, colons or line breaks")
				}
				if names[u.Name] {
					return keyErr(uk+".name", "user %q listed twice", u.Name)
				}
				names[u.Name] = true
				if u.Password == "" {
					return keyErr(uk+".password", "must not be empty")
				}
			}
			if d := a.NonceTTL.Std(); d < 10*time.Second || d > time.Hour {
				return keyErr(k+".auth.nonce_ttl", "must be between 10s and 1h")
			}
		}
		if g := r.Registrar; g != nil {
			if g.AOR != "" && (len(g.AOR) > 64 || strings.ContainsAny(g.AOR, " \t\r\n@:;<>\"")) {
				return keyErr(k+".registrar.aor", "%q must be a bare user part", g.AOR)
			}
			if g.MaxBindings < 1 || g.MaxBindings > 1e6 {
				return keyErr(k+".registrar.max_bindings", "must be between 1 and 1000000")
			}
			if g.MinExpires.Std() < time.Second || g.MinExpires > g.MaxExpires {
				return keyErr(k+".registrar.min_expires", "must be at least 1s and at most max_expires")
			}
			if g.MaxExpires.Std() > 24*time.Hour {
				return keyErr(k+".registrar.max_expires", "must be at most 24h")
			}
			if g.DefaultExpires < g.MinExpires || g.DefaultExpires > g.MaxExpires {
				return keyErr(k+".registrar.default_expires", "must be between min_expires and max_expires")
			}
		}
		if err := r.Admission.validate(k + ".admission"); err != nil {
			return err
		}
	}
	return nil
}

// ParseCIDR parses "10.0.0.0/8", "2001:db8::/32" or a bare address (a /32
// or /128). The prefix is masked.
func ParseCIDR(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or address", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (%v)", s, err)
	}
	return p.Masked(), nil
}
