package policy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

// Resolver is the part of *net.Resolver a trunk needs to find its targets.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// maxTargets bounds what DNS can make of one trunk.
const maxTargets = 16

// ErrNoTargets is returned when a trunk's names resolve to nothing; ErrDNS
// when a lookup failed but earlier answers were kept.
var (
	ErrNoTargets = errors.New("no trunk target resolved")
	ErrDNS       = errors.New("trunk DNS lookup failed")
)

// Trunk is a carrier trunk at run time: its resolved targets and whether
// each is up (from OPTIONS keepalive), its credentials and number rules.
// It is safe for concurrent use: routing reads it while keepalive writes.
type Trunk struct {
	Name, Realm   string
	Domain        string
	Creds         *config.Credentials
	Register      config.Registration
	Keepalive     config.Keepalive
	TargetTimeout time.Duration
	out, in       []config.NumberRule
	specs         []config.TrunkTarget

	mu      sync.RWMutex
	targets []*TargetState
	dnsErr  string
}

// TargetState is one resolved target and its health.
type TargetState struct {
	Target config.Target
	From   string // the configured target it was resolved from

	up, known        bool
	fails, oks       int
	since, lastProbe time.Time
	lastCode         int
	probes, failures uint64
}

// TargetStatus is a target as the admin API shows it.
type TargetStatus struct {
	Target    string    `json:"target"`
	From      string    `json:"from"`
	State     string    `json:"state"` // up, down, unknown (not probed yet: routed to)
	Since     time.Time `json:"since,omitzero"`
	LastProbe time.Time `json:"last_probe,omitzero"`
	LastCode  int       `json:"last_code"`
	Probes    uint64    `json:"probes"`
	Failures  uint64    `json:"failures"`
}

// NewTrunk builds a trunk from validated config. Targets that are IP
// literals are usable at once; names wait for Resolve.
func NewTrunk(c config.Trunk) (*Trunk, error) {
	t := &Trunk{
		Name: c.Name, Realm: c.Realm, Domain: c.Domain, Creds: c.Credentials,
		Register: c.Register, Keepalive: c.Options, TargetTimeout: c.TargetTimeout.Std(),
		out: c.Normalize.Outbound, in: c.Normalize.Inbound,
	}
	for i, s := range c.Targets {
		tt, err := config.ParseTrunkTarget(s)
		if err != nil {
			return nil, fmt.Errorf("trunks %s targets[%d]: %w", c.Name, i, err)
		}
		t.specs = append(t.specs, tt)
		if tt.IsIP {
			t.targets = append(t.targets, &TargetState{From: s, Target: config.Target{Host: tt.Host, Port: tt.Port, Transport: tt.Transport}})
		}
	}
	if t.Domain == "" && len(t.specs) > 0 {
		t.Domain = t.specs[0].Host
	}
	return t, nil
}

// NeedsDNS reports whether any target is a name.
func (t *Trunk) NeedsDNS() bool {
	for _, s := range t.specs {
		if !s.IsIP {
			return true
		}
	}
	return false
}

// Resolve looks the trunk's names up again (RFC 3263: for a name without
// a port, NAPTR for the configured transport when the resolver can, then
// SRV, falling back to A/AAAA on port 5060; A/AAAA for a name with a port)
// and keeps the health of targets that are still there. NAPTR only picks
// SRV names: the transport stays the configured one.
func (t *Trunk) Resolve(ctx context.Context, res Resolver) error {
	var got []*TargetState
	var errs []string
	add := func(from string, tg config.Target) {
		if len(got) >= maxTargets {
			return
		}
		for _, g := range got {
			if g.Target == tg {
				return
			}
		}
		got = append(got, &TargetState{From: from, Target: tg})
	}
	for i, s := range t.specs {
		from := t.specString(i)
		if s.IsIP {
			add(from, config.Target{Host: s.Host, Port: s.Port, Transport: s.Transport})
			continue
		}
		n := len(got)
		if s.Port == 0 {
			srvs, err := lookupSIPSRV(ctx, res, s)
			var nf *net.DNSError
			if err != nil && !(errors.As(err, &nf) && nf.IsNotFound) {
				// No SRV record is normal (A/AAAA follows); a failure is not.
				errs = append(errs, err.Error())
			}
			// net.Resolver returns them sorted by priority and shuffled by
			// weight (RFC 2782).
			for _, srv := range srvs {
				if srv.Target == "." || srv.Port == 0 {
					continue
				}
				ips, err := lookupIPs(ctx, res, strings.TrimSuffix(srv.Target, "."))
				if err != nil {
					errs = append(errs, err.Error())
				}
				for _, ip := range ips {
					add(from, config.Target{Host: ip, Port: int(srv.Port), Transport: s.Transport})
				}
			}
			if len(got) > n {
				continue
			}
		}
		port := s.Port
		if port == 0 {
			port = config.DefaultSIPPort(s.Transport)
		}
		ips, err := lookupIPs(ctx, res, s.Host)
		if err != nil {
			errs = append(errs, err.Error())
		}
		for _, ip := range ips {
			add(from, config.Target{Host: ip, Port: port, Transport: s.Transport})
		}
		if len(got) == n {
			// This name resolved to nothing now: keep what it resolved to
			// before, so a DNS outage does not take a working trunk down.
			t.mu.RLock()
			for _, old := range t.targets {
				if old.From == from {
					add(from, old.Target)
				}
			}
			t.mu.RUnlock()
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dnsErr = strings.Join(errs, "; ")
	if len(got) == 0 {
		// Keep what was resolved before: a DNS outage must not take a
		// working trunk down.
		return fmt.Errorf("trunk %s: %w: %s", t.Name, ErrNoTargets, t.dnsErr)
	}
	for i, g := range got {
		for _, old := range t.targets {
			if old.Target == g.Target {
				old.From = g.From
				got[i] = old
			}
		}
	}
	t.targets = got
	if len(errs) > 0 {
		return fmt.Errorf("trunk %s: %w: %s (keeping the last answers)", t.Name, ErrDNS, t.dnsErr)
	}
	return nil
}

// lookupSIPSRV finds the SRV records of a name for a transport: through
// its NAPTR records when the resolver can look them up and there are any
// for the transport (RFC 3263 4.1), else _sip._udp/_sip._tcp/_sips._tcp directly.
func lookupSIPSRV(ctx context.Context, res Resolver, s config.TrunkTarget) ([]*net.SRV, error) {
	if nl, ok := res.(NAPTRLookuper); ok {
		recs, err := nl.LookupNAPTR(ctx, s.Host)
		if err == nil {
			var all []*net.SRV
			var lastErr error
			for _, name := range naptrSRVNames(recs, s.Transport) {
				_, srvs, err := res.LookupSRV(ctx, "", "", name)
				if err != nil {
					lastErr = fmt.Errorf("SRV %s (from NAPTR %s): %w", name, s.Host, err)
				}
				all = append(all, srvs...)
			}
			if len(all) > 0 {
				return all, nil
			}
			if lastErr != nil {
				return nil, lastErr
			}
		}
	}
	service, proto := "sip", s.Transport
	if s.Transport == "tls" { // RFC 3263 4.1: SIP over TLS is _sips._tcp
		service, proto = "sips", "tcp"
	}
	_, srvs, err := res.LookupSRV(ctx, service, proto, s.Host)
	if err != nil {
		return nil, fmt.Errorf("SRV _%s._%s.%s: %w", service, proto, s.Host, err)
	}
	return srvs, nil
}

func lookupIPs(ctx context.Context, res Resolver, host string) ([]string, error) {
	addrs, err := res.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("A/AAAA %s: %w", host, err)
	}
	var out []string
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil {
			out = append(out, ip.Unmap().String())
		}
	}
	sort.SliceStable(out, func(i, j int) bool { // IPv4 first: the lab and most trunks
		return strings.Contains(out[j], ":") && !strings.Contains(out[i], ":")
	})
	return out, nil
}

func (t *Trunk) specString(i int) string { return t.specs[i].String() }

// Targets returns every resolved target, in order.
func (t *Trunk) Targets() []config.Target {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]config.Target, 0, len(t.targets))
	for _, s := range t.targets {
		out = append(out, s.Target)
	}
	return out
}

// UpTargets returns the targets not marked down, in order.
func (t *Trunk) UpTargets() []config.Target {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []config.Target
	for _, s := range t.targets {
		if s.up || !s.known {
			out = append(out, s.Target)
		}
	}
	return out
}

// Up reports whether at least one target is not marked down.
func (t *Trunk) Up() bool { return len(t.UpTargets()) > 0 }

// Probe records the result of one OPTIONS to a target (code 0: no answer)
// and reports whether the target's state changed and what it is now. A
// target goes down after DownAfter failures in a row and up after UpAfter
// successes in a row; the first probe decides at once.
func (t *Trunk) Probe(tg config.Target, ok bool, code int, now time.Time) (changed, up bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s *TargetState
	for _, x := range t.targets {
		if x.Target == tg {
			s = x
		}
	}
	if s == nil {
		return false, false
	}
	s.probes++
	s.lastProbe, s.lastCode = now, code
	if ok {
		s.oks++
		s.fails = 0
	} else {
		s.failures++
		s.fails++
		s.oks = 0
	}
	switch {
	case !s.known:
		// Unknown counts as up for routing; a failure needs DownAfter in a
		// row like any other, a success makes it known up at once.
		if ok {
			s.known, s.up, s.since, changed = true, true, now, true
		} else if s.fails >= t.Keepalive.DownAfter {
			s.known, s.up, s.since, changed = true, false, now, true
		}
	case s.up && s.fails >= t.Keepalive.DownAfter:
		s.up, s.since, changed = false, now, true
	case !s.up && s.oks >= t.Keepalive.UpAfter:
		s.up, s.since, changed = true, now, true
	}
	return changed, s.up || !s.known
}

// Status is the targets' health for the admin API.
func (t *Trunk) Status() ([]TargetStatus, string) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]TargetStatus, 0, len(t.targets))
	for _, s := range t.targets {
		st := "unknown"
		if s.known && s.up {
			st = "up"
		} else if s.known {
			st = "down"
		}
		out = append(out, TargetStatus{
			Target: s.Target.String(), From: s.From, State: st, Since: s.since,
			LastProbe: s.lastProbe, LastCode: s.lastCode, Probes: s.probes, Failures: s.failures,
		})
	}
	return out, t.dnsErr
}

// HasSource reports whether ip (no port) is one of the trunk's targets:
// how a call arriving in the trunk's realm is recognised as the trunk's.
func (t *Trunk) HasSource(ip string) bool { return t.sourceMatch(ip, 0) > 0 }

// sourceMatch is 2 when ip and port are one of the trunk's targets, 1
// when only the IP is, 0 otherwise.
func (t *Trunk) sourceMatch(ip string, port int) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	best := 0
	for _, s := range t.targets {
		if s.Target.Host == ip {
			if s.Target.Port == port {
				return 2
			}
			best = 1
		}
	}
	return best
}

// ToTrunk converts a number (E.164) into the trunk's format.
func (t *Trunk) ToTrunk(n string) string {
	if t == nil {
		return n
	}
	return Normalize(n, t.out)
}

// FromTrunk converts a number in the trunk's format into E.164.
func (t *Trunk) FromTrunk(n string) string {
	if t == nil {
		return n
	}
	return Normalize(n, t.in)
}

// Normalize applies the first rule whose strip_prefix the number starts
// with (a rule without one matches every number): strip it, add
// add_prefix. Only telephone numbers are touched: a user part with
// anything but digits and a leading + (a name like "alice") is returned
// as is.
func Normalize(n string, rules []config.NumberRule) string {
	if !isNumber(n) {
		return n
	}
	for _, r := range rules {
		if strings.HasPrefix(n, r.StripPrefix) {
			return r.AddPrefix + n[len(r.StripPrefix):]
		}
	}
	return n
}

func isNumber(n string) bool {
	if n == "" || len(n) > 32 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= '0' && c <= '9' || c == '+' && i == 0 || c == '*' || c == '#') {
			return false
		}
	}
	return true
}
