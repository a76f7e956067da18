package config

import (
	"fmt"
	"net/netip"
)

// Redirect is what a route does with a 3xx from its target
// (routes[].redirect).
type Redirect struct {
	// Mode follow (the default) has the SBC try the 3xx's Contacts itself,
	// so the caller sees only the final outcome; relay hands the 3xx to the
	// caller, its Contacts rewritten to point at the SBC.
	Mode string `yaml:"mode"`
	// MaxHops bounds the redirects followed for one call (1 to 10): a
	// redirect loop ends there with 482.
	MaxHops int `yaml:"max_hops"`
	// Diversion is what a followed redirect's INVITE says of where it
	// came from: none, diversion (RFC 5806) or history-info (RFC 7044).
	Diversion string `yaml:"diversion"`
	// Allow, when set, is the only networks (CIDRs) a followed Contact may
	// point into; Deny the networks it may never point into.
	Allow []string `yaml:"allow"`
	Deny  []string `yaml:"deny"`
}

// Redirect modes and diversion styles.
const (
	RedirectFollow = "follow"
	RedirectRelay  = "relay"

	DiversionNone        = "none"
	DiversionHeader      = "diversion"
	DiversionHistoryInfo = "history-info"
)

// DefaultRedirectHops is redirect.max_hops when none is given.
const DefaultRedirectHops = 3

// maxRedirectHops bounds max_hops: each hop is a full INVITE transaction.
const maxRedirectHops = 10

func (r *Redirect) defaults() {
	if r.Mode == "" {
		r.Mode = RedirectFollow
	}
	if r.MaxHops == 0 {
		r.MaxHops = DefaultRedirectHops
	}
	if r.Diversion == "" {
		r.Diversion = DiversionNone
	}
}

func (r Redirect) validate(key string) error {
	if r.Mode != RedirectFollow && r.Mode != RedirectRelay {
		return keyErr(key+".mode", "%q is not follow or relay", r.Mode)
	}
	if r.MaxHops < 1 || r.MaxHops > maxRedirectHops {
		return keyErr(key+".max_hops", "%d is not between 1 and %d", r.MaxHops, maxRedirectHops)
	}
	switch r.Diversion {
	case DiversionNone, DiversionHeader, DiversionHistoryInfo:
	default:
		return keyErr(key+".diversion", "%q is not none, diversion or history-info", r.Diversion)
	}
	for name, list := range map[string][]string{"allow": r.Allow, "deny": r.Deny} {
		for i, p := range list {
			if _, err := netip.ParsePrefix(p); err != nil {
				return keyErr(fmt.Sprintf("%s.%s[%d]", key, name, i), "%q is not a CIDR (%v)", p, err)
			}
		}
	}
	return nil
}

// Networks returns Allow and Deny parsed (the config was validated).
func (r Redirect) Networks() (allow, deny []netip.Prefix) {
	parse := func(l []string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range l {
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
			}
		}
		return out
	}
	return parse(r.Allow), parse(r.Deny)
}
