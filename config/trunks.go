package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Trunk is a carrier SIP trunk: where the carrier's proxies are, how the SBC
// authenticates to them, whether it registers, how it checks that each
// target is alive, and how numbers look on the carrier's side.
type Trunk struct {
	Name  string `yaml:"name"`
	Realm string `yaml:"realm"`
	// Targets are "host[:port][;transport=udp|tcp]". host is an IP address
	// or a DNS name; a name without a port is looked up as DNS SRV
	// (_sip._udp / _sip._tcp), a name with a port as A/AAAA.
	Targets []string `yaml:"targets"`
	// Domain is the carrier's SIP domain: the host of the REGISTER
	// request-URI and of the registered address of record. Defaults to the
	// host of the first target.
	Domain      string       `yaml:"domain"`
	Credentials *Credentials `yaml:"credentials"`
	Register    Registration `yaml:"register"`
	Options     Keepalive    `yaml:"options"`
	Normalize   Normalize    `yaml:"normalize"`
	// TargetTimeout is how long a target may stay silent on an INVITE
	// before the next one (or the next trunk) is tried.
	TargetTimeout Duration `yaml:"target_timeout"`
	// Admission limits the trunk's calls, both directions (trunk_admission.go).
	Admission *AdmissionConfig `yaml:"admission"`
}

// Credentials answer the carrier's digest challenges (RFC 8760: MD5 and
// SHA-256).
type Credentials struct {
	Username string `yaml:"username"`
	// Password, or PasswordFile: a file whose first line is the password
	// (read at load, so -check-config finds a missing file).
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Realm, when set, restricts the credentials to challenges of that
	// realm; empty answers any realm.
	Realm string `yaml:"realm"`
}

// Registration is outbound REGISTER to the carrier.
type Registration struct {
	Enabled bool `yaml:"enabled"`
	// Expires is what the SBC asks for, in seconds; the refresh happens at
	// 50-80% of what the registrar grants.
	Expires int `yaml:"expires"`
	// RetryMin and RetryMax bound the back-off after a failed REGISTER
	// (doubling from RetryMin).
	RetryMin Duration `yaml:"retry_min"`
	RetryMax Duration `yaml:"retry_max"`
}

// Keepalive is OPTIONS to each target of the trunk.
type Keepalive struct {
	// Interval between OPTIONS to each target; 0 turns keepalive off (the
	// targets then count as up).
	Interval Duration `yaml:"interval"`
	// Timeout is how long one OPTIONS may go unanswered.
	Timeout Duration `yaml:"timeout"`
	// DownAfter failures in a row mark a target down, UpAfter successes in
	// a row mark it up again.
	DownAfter int `yaml:"down_after"`
	UpAfter   int `yaml:"up_after"`
}

// Normalize converts numbers between E.164 (what routing sees) and the
// carrier's format. Outbound rules apply to calls sent to the trunk,
// inbound rules to calls that arrive from it; in each list the first rule
// whose strip_prefix matches (or that has none) applies.
type Normalize struct {
	Outbound []NumberRule `yaml:"outbound"`
	Inbound  []NumberRule `yaml:"inbound"`
}

// NumberRule strips a prefix and adds another: {strip_prefix: "+49",
// add_prefix: "0"} turns +4930123 into 030123.
type NumberRule struct {
	StripPrefix string `yaml:"strip_prefix"`
	AddPrefix   string `yaml:"add_prefix"`
}

// TrunkTarget is one parsed trunk target. Port 0 means "look up SRV".
type TrunkTarget struct {
	Host      string
	Port      int
	Transport string
	IsIP      bool
}

func (t TrunkTarget) String() string {
	s := t.Host
	if t.Port != 0 {
		s = net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	}
	return s + ";transport=" + t.Transport
}

var hostnameRe = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$`)

// ParseTrunkTarget parses "host[:port][;transport=udp|tcp]" where host is
// an IP address (port defaults to 5060) or a DNS name (no port: SRV).
func ParseTrunkTarget(s string) (TrunkTarget, error) {
	t := TrunkTarget{Transport: "udp"}
	hp, params, _ := strings.Cut(s, ";")
	if params != "" {
		k, v, ok := strings.Cut(params, "=")
		if !ok || k != "transport" || (v != "udp" && v != "tcp" && v != "tls") {
			return t, fmt.Errorf("%q: only ;transport=udp, tcp or tls may follow the host", s)
		}
		t.Transport = v
	}
	if ap, err := netip.ParseAddrPort(hp); err == nil {
		if ap.Port() == 0 {
			return t, fmt.Errorf("%q: port 0", hp)
		}
		t.Host, t.Port, t.IsIP = ap.Addr().String(), int(ap.Port()), true
		return t, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(hp, "[]")); err == nil {
		t.Host, t.Port, t.IsIP = a.String(), DefaultSIPPort(t.Transport), true
		return t, nil
	}
	host, port := hp, ""
	if i := strings.LastIndexByte(hp, ':'); i >= 0 {
		host, port = hp[:i], hp[i+1:]
	}
	if !hostnameRe.MatchString(host) || len(host) > 253 {
		return t, fmt.Errorf("%q is not an IP address or a DNS name", host)
	}
	t.Host = strings.TrimSuffix(strings.ToLower(host), ".")
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return t, fmt.Errorf("%q: bad port", hp)
		}
		t.Port = p
	}
	return t, nil
}

// DefaultSIPPort is the port a target without one is reached on: 5061 for
// TLS, 5060 otherwise (RFC 3261 19.1.2).
func DefaultSIPPort(transport string) int {
	if transport == "tls" {
		return 5061
	}
	return 5060
}

// Secret is the password, from the config or from password_file (read by
// Validate).
func (c *Credentials) Secret() string { return c.Password }

func (c *Config) trunkDefaults() {
	for i := range c.Trunks {
		t := &c.Trunks[i]
		if t.Register.Expires == 0 {
			t.Register.Expires = 3600
		}
		if t.Register.RetryMin == 0 {
			t.Register.RetryMin = Duration(5 * time.Second)
		}
		if t.Register.RetryMax == 0 {
			t.Register.RetryMax = Duration(5 * time.Minute)
		}
		if t.Options.Timeout == 0 {
			t.Options.Timeout = Duration(2 * time.Second)
		}
		if t.Options.DownAfter == 0 {
			t.Options.DownAfter = 3
		}
		if t.Options.UpAfter == 0 {
			t.Options.UpAfter = 2
		}
		if t.TargetTimeout == 0 {
			t.TargetTimeout = Duration(2 * time.Second)
		}
		t.Admission.defaults()
	}
	c.routingDefaults()
}

// validateTrunks checks trunks, the dial plan and header rules.
func (c *Config) validateTrunks() error {
	names := map[string]bool{}
	for i := range c.Trunks {
		t := &c.Trunks[i]
		k := fmt.Sprintf("trunks[%d]", i)
		if !nameRe.MatchString(t.Name) {
			return keyErr(k+".name", "%q must be lower-case letters, digits, - or _ (max 32), starting with a letter", t.Name)
		}
		if names[t.Name] {
			return keyErr(k+".name", "trunk %q is defined twice", t.Name)
		}
		names[t.Name] = true
		r := c.Realm(t.Realm)
		if r == nil {
			return keyErr(k+".realm", "unknown realm %q", t.Realm)
		}
		if len(t.Targets) == 0 || len(t.Targets) > 16 {
			return keyErr(k+".targets", "between 1 and 16 targets are required")
		}
		for j, s := range t.Targets {
			tt, err := ParseTrunkTarget(s)
			if err != nil {
				return keyErr(fmt.Sprintf("%s.targets[%d]", k, j), "%v", err)
			}
			if !r.HasTransport(tt.Transport) {
				return keyErr(fmt.Sprintf("%s.targets[%d]", k, j), "realm %q does not listen on %s", t.Realm, tt.Transport)
			}
		}
		if t.Domain != "" && !hostnameRe.MatchString(t.Domain) {
			if _, err := netip.ParseAddr(t.Domain); err != nil {
				return keyErr(k+".domain", "%q is not a host name or IP address", t.Domain)
			}
		}
		if err := t.Credentials.validate(k + ".credentials"); err != nil {
			return err
		}
		if t.Register.Expires < 60 || t.Register.Expires > 86400 {
			return keyErr(k+".register.expires", "must be between 60 and 86400 seconds")
		}
		if t.Register.RetryMin.Std() < 100*time.Millisecond || t.Register.RetryMax < t.Register.RetryMin || t.Register.RetryMax.Std() > time.Hour {
			return keyErr(k+".register.retry_min", "want 100ms <= retry_min <= retry_max <= 1h")
		}
		if iv := t.Options.Interval.Std(); iv != 0 && (iv < 100*time.Millisecond || iv > time.Hour) {
			return keyErr(k+".options.interval", "must be 0 (off) or between 100ms and 1h")
		}
		if to := t.Options.Timeout.Std(); to < 50*time.Millisecond || to > 32*time.Second {
			return keyErr(k+".options.timeout", "must be between 50ms and 32s")
		}
		if t.Options.DownAfter < 1 || t.Options.DownAfter > 100 {
			return keyErr(k+".options.down_after", "must be between 1 and 100")
		}
		if t.Options.UpAfter < 1 || t.Options.UpAfter > 100 {
			return keyErr(k+".options.up_after", "must be between 1 and 100")
		}
		for dir, rules := range map[string][]NumberRule{"outbound": t.Normalize.Outbound, "inbound": t.Normalize.Inbound} {
			for j, nr := range rules {
				if !numberAffix(nr.StripPrefix) || !numberAffix(nr.AddPrefix) {
					return keyErr(fmt.Sprintf("%s.normalize.%s[%d]", k, dir, j), "prefixes may hold only digits, +, *, # (max 16)")
				}
			}
		}
		if tt := t.TargetTimeout.Std(); tt < 100*time.Millisecond || tt > 60*time.Second {
			return keyErr(k+".target_timeout", "must be between 100ms and 60s")
		}
		if err := t.Admission.validate(k + ".admission"); err != nil {
			return err
		}
	}
	return c.validateRouting(names)
}

func (cr *Credentials) validate(k string) error {
	if cr == nil {
		return nil
	}
	if cr.Username == "" || len(cr.Username) > 128 || strings.ContainsAny(cr.Username, "\"\r\n\\") {
		return keyErr(k+".username", "a username of 1-128 characters without quotes or line breaks is required")
	}
	if cr.Password != "" && cr.PasswordFile != "" {
		return keyErr(k, "give password or password_file, not both")
	}
	if cr.PasswordFile != "" {
		b, err := os.ReadFile(cr.PasswordFile)
		if err != nil {
			return keyErr(k+".password_file", "%v", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		cr.Password = strings.TrimRight(line, "\r")
	}
	if cr.Password == "" {
		return keyErr(k+".password", "a password (or password_file) is required")
	}
	if strings.ContainsAny(cr.Realm, "\"\r\n\\") {
		return keyErr(k+".realm", "must not hold quotes or line breaks")
	}
	return nil
}

func numberAffix(s string) bool {
	if len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] == '+' || s[i] == '*' || s[i] == '#') {
			return false
		}
	}
	return true
}

// Trunk returns the trunk with that name, or nil.
func (c *Config) Trunk(name string) *Trunk {
	for i := range c.Trunks {
		if c.Trunks[i].Name == name {
			return &c.Trunks[i]
		}
	}
	return nil
}
