package config

import (
	"net/netip"
	"strings"
)

// StaticPeers are a realm's known peers that the config names: the IP
// targets of routes into the realm, guard.trusted, the realm's acl.allow
// and guard.realms[].peers (docs/guard.md). Trunk targets (resolved as DNS
// changes) and registered contacts are the B2BUA's to add. A route target
// named by DNS is not among them.
func (c *Config) StaticPeers(realm string) []netip.Prefix {
	var out []netip.Prefix
	add := func(s string) {
		if n, err := ParseCIDR(s); err == nil {
			out = append(out, n)
		}
	}
	if p := c.Guard.RealmPolicy(realm); p != nil {
		for _, s := range p.Peers {
			add(s)
		}
		if p.ACL != nil {
			for _, s := range p.ACL.Allow {
				add(s)
			}
		}
	}
	for _, s := range c.Guard.Trusted {
		add(s)
	}
	for _, rt := range c.Routes {
		if rt.ToRealm != realm {
			continue
		}
		for _, t := range rt.Targets {
			if tg, err := ParseTarget(t); err == nil {
				if a, err := netip.ParseAddr(strings.Trim(tg.Host, "[]")); err == nil {
					add(a.Unmap().String())
				}
			}
		}
	}
	return out
}

// realmTrunks names the trunks of a realm.
func (c *Config) realmTrunks(realm string) []string {
	var out []string
	for _, t := range c.Trunks {
		if t.Realm == realm {
			out = append(out, t.Name)
		}
	}
	return out
}
