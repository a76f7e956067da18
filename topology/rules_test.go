package topology_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/topology"
)

// ruleSource is a request from the other leg carrying headers the rules
// act on.
func ruleSource() *sip.Request {
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "100", Host: "198.51.100.10"})
	req.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<sip:+4930123@pbx.corp.example>"))
	req.AppendHeader(sip.NewHeader("Subject", "internal project x"))
	req.AppendHeader(sip.NewHeader("X-Internal", "secret-1"))
	req.AppendHeader(sip.NewHeader("X-Internal", "keep-2"))
	req.AppendHeader(sip.NewHeader("Privacy", "none"))
	return req
}

func headerValues(m interface{ GetHeaders(string) []sip.Header }, name string) string {
	var v []string
	for _, h := range m.GetHeaders(name) {
		v = append(v, h.Value())
	}
	return strings.Join(v, " | ")
}

func TestHeaderRules(t *testing.T) {
	pass := []string{"P-Asserted-Identity", "Subject", "X-Internal", "Privacy"}
	cases := []struct {
		name   string
		rules  []config.HeaderRule
		method sip.RequestMethod
		check  map[string]string // header -> joined values ("" = absent)
	}{
		{"no rules", nil, sip.INVITE, map[string]string{"X-Internal": "secret-1 | keep-2", "Subject": "internal project x"}},
		{"add", []config.HeaderRule{{Action: "add", Header: "X-Trunk", Value: "carrier-a"}}, sip.INVITE,
			map[string]string{"X-Trunk": "carrier-a"}},
		{"remove all", []config.HeaderRule{{Action: "remove", Header: "x-internal"}}, sip.INVITE,
			map[string]string{"X-Internal": "", "Subject": "internal project x"}},
		{"remove matching only", []config.HeaderRule{{Action: "remove", Header: "X-Internal", Match: "^secret"}}, sip.INVITE,
			map[string]string{"X-Internal": "keep-2"}},
		{"replace domain in PAI", []config.HeaderRule{{Action: "replace", Header: "P-Asserted-Identity", Match: `@[^>;]+`, Value: "@sbc.example.net"}}, sip.INVITE,
			map[string]string{"P-Asserted-Identity": "<sip:+4930123@sbc.example.net>"}},
		{"replace with groups", []config.HeaderRule{{Action: "replace", Header: "Subject", Match: `^internal (.*)$`, Value: "[$1]"}}, sip.INVITE,
			map[string]string{"Subject": "[project x]"}},
		{"replace to empty drops", []config.HeaderRule{{Action: "replace", Header: "Subject", Match: `.*`, Value: ""}}, sip.INVITE,
			map[string]string{"Subject": ""}},
		{"replace no match keeps", []config.HeaderRule{{Action: "replace", Header: "Privacy", Match: `id`, Value: "x"}}, sip.INVITE,
			map[string]string{"Privacy": "none"}},
		{"method limited, other method", []config.HeaderRule{{Action: "add", Header: "X-Only-Invite", Value: "1", Methods: []string{"INVITE"}}}, sip.UPDATE,
			map[string]string{"X-Only-Invite": ""}},
		{"method limited, its method", []config.HeaderRule{{Action: "add", Header: "X-Only-Invite", Value: "1", Methods: []string{"INVITE"}}}, sip.INVITE,
			map[string]string{"X-Only-Invite": "1"}},
		{"rules in order", []config.HeaderRule{
			{Action: "add", Header: "X-A", Value: "one"},
			{Action: "replace", Header: "X-A", Match: "one", Value: "two"},
			{Action: "remove", Header: "Privacy"},
		}, sip.INVITE, map[string]string{"X-A": "two", "Privacy": ""}},
		{"compact name in rule", []config.HeaderRule{{Action: "remove", Header: "s"}}, sip.INVITE, map[string]string{"Subject": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := topology.NewHeaderFilter("allow", pass)
			f.SetTrusted(true) // PAI crosses rebuilt between trusted realms (identity.go)
			if err := f.SetRules(c.rules); err != nil {
				t.Fatal(err)
			}
			d := topology.Dialog{CallID: "c1", LocalURI: sip.Uri{Scheme: "sip", Host: "203.0.113.1"}, LocalTag: "t",
				RemoteURI: sip.Uri{Scheme: "sip", Host: "203.0.113.10"}, Target: sip.Uri{Scheme: "sip", Host: "203.0.113.10"}}
			req := topology.BuildRequest(c.method, d, 1, 70, topology.Local{Host: "203.0.113.1", Port: 5060, Transport: "UDP", From: &topology.Origin{Trusted: true}}, f, ruleSource(), nil, "")
			for h, want := range c.check {
				if got := headerValues(req, h); got != want {
					t.Errorf("request %s = %q, want %q\n%s", h, got, want, req)
				}
			}
			if req.Via() == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
				t.Fatalf("rules broke the dialog headers:\n%s", req)
			}
			// Responses built into the realm get the same rules (by the
			// CSeq method).
			src := sip.NewResponse(200, "OK")
			for _, h := range ruleSource().Headers() {
				if n := h.Name(); n != "Via" && n != "From" && n != "To" && n != "Call-ID" && n != "CSeq" {
					src.AppendHeader(sip.HeaderClone(h))
				}
			}
			in := ruleSource()
			in.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: c.method})
			res := topology.BuildResponse(in, 200, "OK", "tag", false, topology.Local{Host: "203.0.113.1", Port: 5060, From: &topology.Origin{Trusted: true}}, f, src, nil, "")
			for h, want := range c.check {
				if got := headerValues(res, h); got != want {
					t.Errorf("response %s = %q, want %q", h, got, want)
				}
			}
		})
	}
}

func TestHeaderRulesRefuseProtected(t *testing.T) {
	for _, h := range []string{"Via", "call-id", "CSeq", "From", "t", "Contact", "Route", "Content-Length"} {
		f := topology.NewHeaderFilter("allow", nil)
		if err := f.SetRules([]config.HeaderRule{{Action: "remove", Header: h}}); err == nil {
			t.Errorf("rule on %s accepted", h)
		}
	}
}

// One list: a header the filter never copies across (the SBC writes its
// own) is one no rule may touch, and the other way round.
func TestProtectedHeadersOneList(t *testing.T) {
	for h := range config.ProtectedHeaders {
		allow := topology.NewHeaderFilter("allow", []string{h})
		deny := topology.NewHeaderFilter("deny", nil)
		if allow.Pass(h) || deny.Pass(h) {
			t.Errorf("%s is protected but crosses the filter", h)
		}
		if err := topology.NewHeaderFilter("allow", nil).SetRules([]config.HeaderRule{{Action: "remove", Header: h}}); err == nil {
			t.Errorf("%s is protected but a rule on it is accepted", h)
		}
	}
	// Identity and capability headers never cross raw (they are rebuilt),
	// but a rule may still edit what the SBC wrote.
	for h := range config.IdentityHeaders {
		if topology.NewHeaderFilter("allow", []string{h}).Pass(h) || topology.NewHeaderFilter("deny", nil).Pass(h) {
			t.Errorf("%s is rebuilt but crosses the filter raw", h)
		}
		if err := topology.NewHeaderFilter("allow", nil).SetRules([]config.HeaderRule{{Action: "remove", Header: h}}); err != nil {
			t.Errorf("rule on %s: %v", h, err)
		}
	}
	for h := range config.CapabilityHeaders {
		if topology.NewHeaderFilter("allow", []string{h}).Pass(h) || topology.NewHeaderFilter("deny", nil).Pass(h) {
			t.Errorf("%s is the SBC's own on each leg but crosses the filter", h)
		}
	}
	for _, h := range []string{"Subject", "s", "X-Internal", "Privacy"} {
		if !topology.NewHeaderFilter("allow", []string{h}).Pass(h) {
			t.Errorf("%s allowed by name does not cross", h)
		}
		if err := topology.NewHeaderFilter("allow", nil).SetRules([]config.HeaderRule{{Action: "remove", Header: h}}); err != nil {
			t.Errorf("rule on %s: %v", h, err)
		}
	}
}

// sbc's read filter adds X-Edgesbc-Rx-Len to requests from unverified
// sources and leaves it on the request (removing it would race sipgo's
// own timer goroutine): no filter may ever copy it across.
func TestRxLenHeaderNeverCrosses(t *testing.T) {
	for _, f := range []*topology.HeaderFilter{topology.NewHeaderFilter("deny", nil), topology.NewHeaderFilter("allow", []string{"X-Edgesbc-Rx-Len"})} {
		if f.Pass("X-Edgesbc-Rx-Len") || f.Pass("x-edgesbc-rx-len") {
			t.Error("the SBC's internal length header crosses the header filter")
		}
	}
}
