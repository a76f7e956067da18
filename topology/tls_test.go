package topology_test

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/topology"
)

// On a TLS leg the SBC's Contact must bring the peer back over TLS: sips:
// for a SIPS dialog (RFC 3261 8.1.1.8), sip:...;transport=tls otherwise;
// Via says TLS with the TLS port.
func TestTLSContactAndVia(t *testing.T) {
	cases := []struct {
		l    topology.Local
		want string
	}{
		{topology.Local{Host: "203.0.113.1", Port: 5061, Transport: "TLS"}, "sip:sbc@203.0.113.1:5061;transport=tls"},
		{topology.Local{Host: "203.0.113.1", Port: 5061, Transport: "TLS", SIPS: true}, "sips:sbc@203.0.113.1:5061"},
	}
	for _, c := range cases {
		u := c.l.Contact()
		if got := u.String(); got != c.want {
			t.Errorf("%+v.Contact() = %q, want %q", c.l, got, c.want)
		}
		d := topology.Dialog{CallID: "c1", LocalURI: sip.Uri{Scheme: "sip", User: "a", Host: "203.0.113.1"}, LocalTag: "t1",
			RemoteURI: sip.Uri{Scheme: "sip", User: "b", Host: "203.0.113.10"},
			Target:    sip.Uri{Scheme: "sips", User: "b", Host: "203.0.113.10", Port: 5061}}
		req := topology.BuildRequest(sip.INVITE, d, 1, 70, c.l, nil, nil, nil, "")
		if v := req.Via(); v.Transport != "TLS" || v.Port != 5061 {
			t.Errorf("Via %s %s:%d, want TLS on 5061", v.Transport, v.Host, v.Port)
		}
		if got := req.Contact().Address.String(); got != c.want {
			t.Errorf("request Contact %q, want %q", got, c.want)
		}
		if req.Transport() != "TLS" {
			t.Errorf("request transport %q", req.Transport())
		}
	}
}
