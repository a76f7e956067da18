package policy

import "net/netip"

// ACL is a list of source networks. The zero ACL allows everything (no
// list configured); a non-empty one allows only its networks.
type ACL struct {
	nets []netip.Prefix
}

// NewACL builds an ACL from masked prefixes.
func NewACL(nets []netip.Prefix) *ACL {
	return &ACL{nets: append([]netip.Prefix(nil), nets...)}
}

// Allows reports whether src may send. IPv4-mapped IPv6 addresses are
// matched as IPv4.
func (a *ACL) Allows(src netip.Addr) bool {
	if a == nil || len(a.nets) == 0 {
		return true
	}
	src = src.Unmap()
	for _, p := range a.nets {
		if p.Contains(src) {
			return true
		}
	}
	return false
}
