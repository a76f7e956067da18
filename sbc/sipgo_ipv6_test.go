package sbc

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
)

// Issue 19: leg B toward an IPv6 target never left ("parse address failed
// for 2001:db8:2::10:5060: too many colons in address"). The Request-URI
// legBTarget builds must give sipgo a destination it can take apart.
func TestLegBTargetIPv6Destination(t *testing.T) {
	for _, c := range []struct{ target, uri, dest string }{
		{"[2001:db8:2::10]:5060", "sip:100@[2001:db8:2::10]:5060", "[2001:db8:2::10]:5060"},
		{"[2001:db8:2::10]:5080;transport=tcp", "sip:100@[2001:db8:2::10]:5080;transport=tcp", "[2001:db8:2::10]:5080"},
		{"192.0.2.1:5060", "sip:100@192.0.2.1:5060", "192.0.2.1:5060"},
	} {
		tg, err := config.ParseTarget(c.target)
		if err != nil {
			t.Fatal(err)
		}
		_, u := legBTarget(tg, "100", false)
		if u.String() != c.uri {
			t.Errorf("legBTarget(%s) = %s, want %s", c.target, u.String(), c.uri)
		}
		req := sip.NewRequest(sip.INVITE, u)
		if got := req.Destination(); got != c.dest {
			t.Errorf("%s: destination %q, want %q", c.target, got, c.dest)
		}
		if _, _, err := sip.ParseAddr(req.Destination()); err != nil {
			t.Errorf("%s: sipgo cannot send it: %v", c.target, err)
		}
	}
}
