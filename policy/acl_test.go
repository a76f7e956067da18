package policy

import (
	"net/netip"
	"testing"
)

func TestACL(t *testing.T) {
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	acl := NewACL([]netip.Prefix{p("203.0.113.0/28"), p("198.51.100.10/32"), p("2001:db8::/32")})
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"203.0.113.1", true},
		{"203.0.113.15", true},
		{"203.0.113.16", false},
		{"198.51.100.10", true},
		{"198.51.100.11", false},
		{"::ffff:203.0.113.2", true}, // v4-mapped counts as v4
		{"2001:db8::1", true},
		{"2001:db9::1", false},
		{"192.0.2.1", false},
	} {
		if got := acl.Allows(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("%s: allowed=%v, want %v", tc.addr, got, tc.want)
		}
	}
	var none *ACL
	if !none.Allows(netip.MustParseAddr("192.0.2.1")) || !NewACL(nil).Allows(netip.MustParseAddr("192.0.2.1")) {
		t.Error("an ACL with no list must allow everything")
	}
}
