// Package config is sbcd's configuration: the YAML schema, strict loading
// and validation. Every error names the key it is about, so an operator can
// fix a config without reading code.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole of sbcd's configuration.
type Config struct {
	Realms []Realm   `yaml:"realms"`
	Routes []Route   `yaml:"routes"`
	Admin  Admin     `yaml:"admin"`
	Media  Media     `yaml:"media"`
	SIP    SIPTuning `yaml:"sip"`
	Log    Log       `yaml:"log"`
	Guard  Guard     `yaml:"guard"`
	HA     *HA       `yaml:"ha"`
	// StateDir keeps the calls across a restart of a single node (state.go).
	StateDir string `yaml:"state_dir"`
	// ShutdownGrace bounds SIGTERM to exit; Watchdog times the stall
	// checks (lifecycle.go).
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	Watchdog      Watchdog `yaml:"watchdog"`

	// Trunks and Routing: carrier trunks and the dial plan over them (trunks.go, routing.go).
	Trunks  []Trunk `yaml:"trunks"`
	Routing Routing `yaml:"routing"`

	// CDR writes call detail records (cdr.go); nil: none.
	CDR *CDR `yaml:"cdr"`
	HEP HEP  `yaml:"hep"` // HEP tracing to a Homer collector (hep.go)

	Overload Overload `yaml:"overload"` // shedding new calls past capacity (overload.go)
}

// Realm is one side of the SBC: a network it listens on and speaks to.
type Realm struct {
	Name string `yaml:"name"`
	// Listen is ip:port; the IP must be a literal address (no wildcard on
	// a realm: each realm owns its interface, which is what hides topology).
	Listen     string   `yaml:"listen"`
	Transports []string `yaml:"transports"`
	// Advertise is the address put in Via, Contact and From toward this
	// realm's peers. Defaults to the listen IP.
	Advertise string `yaml:"advertise"`
	// UserAgent replaces User-Agent (requests) and Server (responses) on
	// messages sent into this realm.
	UserAgent string       `yaml:"user_agent"`
	Headers   HeaderPolicy `yaml:"headers"`
	Media     RealmMedia   `yaml:"media"`
	TLS       *RealmTLS    `yaml:"tls"` // see tls.go
	// SessionTimer is the realm's RFC 4028 policy (sessiontimer.go).
	SessionTimer SessionTimer `yaml:"session_timer"`
	// Trust puts the realm in the trust domain of RFC 3325 (identity.go);
	// unset: trusted when its peers are route or trunk targets.
	Trust *bool `yaml:"trust"`
	// RPID is what becomes of a Remote-Party-ID from this realm: drop
	// (the default) or convert (to P-Asserted-Identity, trusted realms only).
	RPID string `yaml:"rpid"`
}

// RealmMedia is where a realm's anchored media lives.
type RealmMedia struct {
	// Address is the SBC's media address in this realm; the listen IP by
	// default.
	Address string `yaml:"address"`
	// Ports is the RTP port range "MIN-MAX" (RTP even, RTCP odd).
	Ports string `yaml:"ports"`
	// NAT lets a stream latch to any source in its first seconds (phones
	// behind NAT); otherwise only the SDP's IP may latch.
	NAT bool `yaml:"nat"`
	// Codecs, when set, is the allow list of encoding names offered into
	// this realm (e.g. PCMU, PCMA, telephone-event).
	Codecs []string `yaml:"codecs"`
	// SRTP is the realm's media security (srtp.go).
	SRTP SRTP `yaml:"srtp"`
}

// HeaderPolicy says which non-essential headers may be carried into a realm.
// Mode "allow" passes DefaultAllowedHeaders and List (only List with
// Replace); mode "deny" passes all but List. Headers that carry topology
// (Via, Route, Record-Route, Contact, Call-ID, ...), capabilities
// (Supported, Allow, Require) or identity (identity.go) are always rebuilt
// and never copied, whatever the policy.
type HeaderPolicy struct {
	Mode string   `yaml:"mode"`
	List []string `yaml:"list"`
	// Replace makes List the whole allow list instead of an addition to
	// the defaults.
	Replace bool `yaml:"replace"`

	// Rules add, remove or rewrite headers on messages into this realm (routing.go).
	Rules []HeaderRule `yaml:"rules"`
}

// Route matches calls from one realm and sends them to an ordered list of
// targets in another.
type Route struct {
	Name       string   `yaml:"name"`
	FromRealm  string   `yaml:"from_realm"`
	ToRealm    string   `yaml:"to_realm"`
	UserPrefix string   `yaml:"user_prefix"`
	UserRegex  string   `yaml:"user_regex"`
	Targets    []string `yaml:"targets"`
	// TargetTimeout is how long a target may stay silent (no response at
	// all) before the next one is tried.
	TargetTimeout Duration `yaml:"target_timeout"`
	// RingTimeout is how long a target may ring without a final answer,
	// counted from its last provisional (or from the INVITE before any):
	// then it is cancelled and the next target tried.
	RingTimeout Duration `yaml:"ring_timeout"`
	// Relay503As is the status a target's 503 reaches the caller as (its
	// Retry-After is dropped either way, so one carrier's overload does not
	// take the SBC out of the caller's route); 0 keeps 503.
	Relay503As int `yaml:"relay_503_as"`
	// Redirect is what a 3xx from a target does (redirect.go).
	Redirect Redirect `yaml:"redirect"`
}

// DefaultRingTimeout is a route's ring_timeout when none is given: RFC
// 3261 16.6's Timer C, the least a proxy lets a branch ring.
const DefaultRingTimeout = 3 * time.Minute

// Media switches media anchoring and sets its timers.
type Media struct {
	// Enabled anchors every call's media on the SBC (the default); false
	// passes SDP through untouched (signaling only).
	Enabled *bool `yaml:"enabled"`
	// Timeout ends an established call, not on hold, whose media has been
	// silent in both directions this long.
	Timeout Duration `yaml:"timeout"`
	// Datapath picks the forwarding path (datapath.go).
	Datapath Datapath `yaml:"datapath"`
}

// Anchored reports whether media anchoring is on.
func (m Media) Anchored() bool { return m.Enabled == nil || *m.Enabled }

// SIPTuning holds the knobs that decide signaling capacity.
type SIPTuning struct {
	// UDPReadBuffer is SO_RCVBUF for each realm's UDP socket, in bytes.
	// The kernel default (~208 KB) overflows on a 10 ms stall at high CPS.
	UDPReadBuffer int `yaml:"udp_read_buffer"`
	// TransactionLinger is how long finished transactions absorb
	// retransmissions (RFC 3261 timers D, I, J, K, L, M; 32 s by default).
	TransactionLinger Duration `yaml:"transaction_linger"`
	// MaxMessage bounds a SIP message in bytes.
	MaxMessage int `yaml:"max_message"`
}

// Log sets the log level: debug, info, warn, error.
type Log struct {
	Level string `yaml:"level"`
}

// Duration is a time.Duration written as "2s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 2s or 500ms", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Target is one parsed route target: host:port;transport=udp|tcp|tls.
type Target struct {
	Host      string
	Port      int
	Transport string
}

func (t Target) String() string {
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) + ";transport=" + t.Transport
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid config")

// Load reads and validates a config file.
func Load(path string) (*Config, error) { return loadWith(path, Parse) }

// loadWith reads a file and parses it, naming the file in errors.
func loadWith(path string, parse func([]byte) (*Config, error)) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	c, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// decodeStrict decodes YAML strictly (unknown keys are errors) and applies
// defaults; the caller validates.
func decodeStrict(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty config", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c.Guard.given = guardKeys(b)
	c.applyDefaults()
	return &c, nil
}

// Parse decodes YAML strictly (unknown keys are errors), applies defaults
// and validates.
func Parse(b []byte) (*Config, error) {
	c, err := decodeStrict(b)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) applyDefaults() {
	for i := range c.Realms {
		r := &c.Realms[i]
		if len(r.Transports) == 0 {
			r.Transports = []string{"udp"}
		}
		if r.UserAgent == "" {
			r.UserAgent = "EdgeSBC"
		}
		r.SessionTimer.applyDefaults()
		if r.Media.Ports == "" {
			r.Media.Ports = "20000-29999"
		}
		if r.Headers.Mode == "" {
			r.Headers.Mode = "allow"
			if len(r.Headers.List) == 0 && !r.Headers.Replace {
				r.Headers.List = DefaultAllowedHeaders
			}
		}
		if r.RPID == "" {
			r.RPID = RPIDDrop
		}
	}
	for i := range c.Routes {
		if c.Routes[i].TargetTimeout == 0 {
			c.Routes[i].TargetTimeout = Duration(2 * time.Second)
		}
		if c.Routes[i].RingTimeout == 0 {
			c.Routes[i].RingTimeout = Duration(DefaultRingTimeout)
		}
		c.Routes[i].Redirect.defaults()
	}
	if c.Media.Timeout == 0 {
		c.Media.Timeout = Duration(30 * time.Second)
	}
	c.Admin.applyDefaults()
	if c.SIP.UDPReadBuffer == 0 {
		c.SIP.UDPReadBuffer = 4 << 20
	}
	if c.SIP.TransactionLinger == 0 {
		c.SIP.TransactionLinger = Duration(32 * time.Second)
	}
	if c.SIP.MaxMessage == 0 {
		c.SIP.MaxMessage = 8192
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	c.Guard.applyDefaults()
	c.trunkDefaults()
	c.lifecycleDefaults()
	c.cdrDefaults()
	c.hepDefaults()
	c.overloadDefaults()
}

// DefaultAllowedHeaders pass between realms in mode allow (a realm's own
// list adds to them): headers that describe the session, never where it
// came from. Supported, Allow and Require are not here: the SBC writes its
// own on each leg (CapabilityHeaders); nor RSeq, which is PRACK's
// (ProtectedHeaders).
var DefaultAllowedHeaders = []string{
	"Accept", "Accept-Encoding", "Accept-Language",
	"Content-Disposition", "Content-Encoding", "Content-Language",
	"Expires", "Event", "Subscription-State", "Allow-Events", "Priority",
	"Privacy", "Reason", "Retry-After", "Unsupported", "Min-Expires",
	"Session-Expires", "Min-SE", "Date", "Subject",
}

func keyErr(key, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, a...))
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// Validate checks everything that can be checked without opening sockets.
func (c *Config) Validate() error {
	if len(c.Realms) == 0 {
		return keyErr("realms", "at least one realm is required")
	}
	realms := map[string]bool{}
	type bound struct {
		key  string
		addr netip.AddrPort
	}
	var listeners []bound
	for i, r := range c.Realms {
		k := fmt.Sprintf("realms[%d]", i)
		if !nameRe.MatchString(r.Name) {
			return keyErr(k+".name", "%q must be lower-case letters, digits, - or _ (max 32), starting with a letter", r.Name)
		}
		if realms[r.Name] {
			return keyErr(k+".name", "realm %q is defined twice", r.Name)
		}
		realms[r.Name] = true
		ap, err := netip.ParseAddrPort(r.Listen)
		if err != nil {
			return keyErr(k+".listen", "%q is not ip:port (%v)", r.Listen, err)
		}
		if ap.Port() == 0 {
			return keyErr(k+".listen", "port 0 is not a listening port")
		}
		if ap.Addr().IsUnspecified() {
			return keyErr(k+".listen", "%s is a wildcard: a realm listens on its own interface address", ap.Addr())
		}
		for _, l := range listeners {
			if l.addr == ap {
				return keyErr(k+".listen", "%s is already the listener of %s", ap, l.key)
			}
		}
		listeners = append(listeners, bound{k, ap})
		seen := map[string]bool{}
		for j, t := range r.Transports {
			tk := fmt.Sprintf("%s.transports[%d]", k, j)
			if t != "udp" && t != "tcp" && t != "tls" {
				return keyErr(tk, "%q is not a supported transport (udp, tcp, tls)", t)
			}
			if seen[t] {
				return keyErr(tk, "%q listed twice", t)
			}
			seen[t] = true
		}
		if r.Advertise != "" {
			if _, err := netip.ParseAddr(r.Advertise); err != nil {
				return keyErr(k+".advertise", "%q is not an IP address", r.Advertise)
			}
		}
		if strings.ContainsAny(r.UserAgent, "\r\n") || len(r.UserAgent) > 128 {
			return keyErr(k+".user_agent", "must be one line of at most 128 characters")
		}
		switch r.Headers.Mode {
		case "allow", "deny":
		default:
			return keyErr(k+".headers.mode", "%q must be allow or deny", r.Headers.Mode)
		}
		for j, h := range r.Headers.List {
			if !isToken(h) {
				return keyErr(fmt.Sprintf("%s.headers.list[%d]", k, j), "%q is not a header name", h)
			}
		}
		if err := validateHeaderPolicy(k+".headers", r.Headers); err != nil { // identity.go
			return err
		}
		if err := r.validateIdentity(k); err != nil {
			return err
		}
	}
	if err := c.validateSessionTimers(); err != nil {
		return err
	}
	if err := c.validateMedia(); err != nil {
		return err
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if err := c.Guard.validate(realms); err != nil {
		return err
	}
	if err := c.validateHA(true); err != nil {
		return err
	}
	if err := c.validateStateDir(); err != nil {
		return err
	}
	if err := c.validateLifecycle(); err != nil {
		return err
	}
	if err := c.validateCDR(); err != nil {
		return err
	}
	if err := c.validateHEP(); err != nil {
		return err
	}
	if err := c.validateOverload(); err != nil {
		return err
	}
	for i, rt := range c.Routes {
		k := fmt.Sprintf("routes[%d]", i)
		if rt.Name == "" {
			return keyErr(k+".name", "a route needs a name")
		}
		if !realms[rt.FromRealm] {
			return keyErr(k+".from_realm", "unknown realm %q", rt.FromRealm)
		}
		if !realms[rt.ToRealm] {
			return keyErr(k+".to_realm", "unknown realm %q", rt.ToRealm)
		}
		if rt.UserPrefix != "" && rt.UserRegex != "" {
			return keyErr(k, "give user_prefix or user_regex, not both")
		}
		if rt.UserRegex != "" {
			if _, err := regexp.Compile(rt.UserRegex); err != nil {
				return keyErr(k+".user_regex", "%v", err)
			}
		}
		if len(rt.Targets) == 0 {
			return keyErr(k+".targets", "at least one target is required")
		}
		for j, t := range rt.Targets {
			if _, err := ParseTarget(t); err != nil {
				return keyErr(fmt.Sprintf("%s.targets[%d]", k, j), "%v", err)
			}
		}
		if rt.TargetTimeout.Std() < 100*time.Millisecond || rt.TargetTimeout.Std() > 60*time.Second {
			return keyErr(k+".target_timeout", "must be between 100ms and 60s")
		}
		if rt.RingTimeout.Std() < 100*time.Millisecond || rt.RingTimeout.Std() > 30*time.Minute {
			return keyErr(k+".ring_timeout", "must be between 100ms and 30m")
		}
		if c := rt.Relay503As; c != 0 && (c < 400 || c > 699) {
			return keyErr(k+".relay_503_as", "%d is not a failure status (400 to 699, or 0 for 503)", c)
		}
		if err := rt.Redirect.validate(k + ".redirect"); err != nil {
			return err
		}
	}
	if err := c.validateTrunks(); err != nil {
		return err
	}
	if err := c.Admin.validate(); err != nil {
		return err
	}
	if c.SIP.UDPReadBuffer < 64<<10 || c.SIP.UDPReadBuffer > 256<<20 {
		return keyErr("sip.udp_read_buffer", "must be between 65536 and 268435456 bytes")
	}
	if l := c.SIP.TransactionLinger.Std(); l < time.Second || l > time.Minute {
		return keyErr("sip.transaction_linger", "must be between 1s and 60s")
	}
	if c.SIP.MaxMessage < 1500 || c.SIP.MaxMessage > 65535 {
		return keyErr("sip.max_message", "must be between 1500 and 65535 bytes")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return keyErr("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	return nil
}

func (c *Config) validateMedia() error {
	type span struct {
		key      string
		addr     netip.Addr
		min, max int
	}
	var spans []span
	for i := range c.Realms {
		r := &c.Realms[i]
		k := fmt.Sprintf("realms[%d].media", i)
		if r.Media.Address != "" {
			if _, err := netip.ParseAddr(r.Media.Address); err != nil {
				return keyErr(k+".address", "%q is not an IP address", r.Media.Address)
			}
		}
		lo, hi, err := ParsePortRange(r.Media.Ports)
		if err != nil {
			return keyErr(k+".ports", "%v", err)
		}
		addr := r.MediaAddr()
		for _, o := range spans {
			if !c.Media.Anchored() {
				break // no ports are bound when media is not anchored
			}
			if o.addr == addr && lo <= o.max && o.min <= hi {
				return keyErr(k+".ports", "%d-%d overlaps %s on %s", lo, hi, o.key, addr)
			}
		}
		spans = append(spans, span{k + ".ports", addr, lo, hi})
		if err := r.Media.SRTP.validate(k + ".srtp"); err != nil {
			return err
		}
		for j, name := range r.Media.Codecs {
			if !isToken(name) {
				return keyErr(fmt.Sprintf("%s.codecs[%d]", k, j), "%q is not a codec name", name)
			}
		}
	}
	if t := c.Media.Timeout.Std(); t < time.Second || t > time.Hour {
		return keyErr("media.timeout", "must be between 1s and 1h")
	}
	return c.Media.validateDatapath()
}

// ParsePortRange parses "MIN-MAX": 1024 <= MIN < MAX <= 65534, room for
// at least one even/odd pair.
func ParsePortRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q is not a port range like 20000-29999", s)
	}
	if lo < 1024 || hi > 65534 || hi-lo < 1 {
		return 0, 0, fmt.Errorf("%q: want 1024 <= min < max <= 65534", s)
	}
	return lo, hi, nil
}

// MediaAddr is the SBC's media address in this realm.
func (r *Realm) MediaAddr() netip.Addr {
	if r.Media.Address != "" {
		a, _ := netip.ParseAddr(r.Media.Address)
		return a
	}
	return r.ListenAddrPort().Addr()
}

// ParseTarget parses "host:port[;transport=udp|tcp|tls]". The host must be an
// IP address: DNS targets come with the trunk work (SRV/NAPTR).
func ParseTarget(s string) (Target, error) {
	t := Target{Transport: "udp"}
	hp, params, _ := strings.Cut(s, ";")
	if params != "" {
		k, v, ok := strings.Cut(params, "=")
		if !ok || k != "transport" || (v != "udp" && v != "tcp" && v != "tls") {
			return t, fmt.Errorf("%q: only ;transport=udp, tcp or tls may follow host:port", s)
		}
		t.Transport = v
	}
	ap, err := netip.ParseAddrPort(hp)
	if err != nil {
		return t, fmt.Errorf("%q is not ip:port (%v)", hp, err)
	}
	if ap.Port() == 0 {
		return t, fmt.Errorf("%q: port 0", hp)
	}
	t.Host = ap.Addr().String()
	t.Port = int(ap.Port())
	return t, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0) {
			return false
		}
	}
	return true
}

// Realm returns the realm with that name, or nil.
func (c *Config) Realm(name string) *Realm {
	for i := range c.Realms {
		if c.Realms[i].Name == name {
			return &c.Realms[i]
		}
	}
	return nil
}

// AdvertiseAddr is the address this realm puts in its own headers.
func (r *Realm) AdvertiseAddr() string {
	if r.Advertise != "" {
		return r.Advertise
	}
	ap, _ := netip.ParseAddrPort(r.Listen)
	return ap.Addr().String()
}

// ListenAddrPort is the parsed listen address (valid after Validate).
func (r *Realm) ListenAddrPort() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(r.Listen)
	return ap
}

// HasTransport reports whether the realm listens on that transport.
func (r *Realm) HasTransport(t string) bool {
	for _, x := range r.Transports {
		if x == t {
			return true
		}
	}
	return false
}
