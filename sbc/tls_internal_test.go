package sbc

import (
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
)

func TestLegBTarget(t *testing.T) {
	cases := []struct {
		target    string
		sips      bool
		transport string
		uri       string
	}{
		{"192.0.2.1:5060", false, "UDP", "sip:100@192.0.2.1:5060"},
		{"192.0.2.1:5060;transport=tcp", false, "TCP", "sip:100@192.0.2.1:5060;transport=tcp"},
		{"192.0.2.1:5061;transport=tls", false, "TLS", "sip:100@192.0.2.1:5061;transport=tls"},
		{"192.0.2.1:5061;transport=tls", true, "TLS", "sips:100@192.0.2.1:5061"},
	}
	for _, c := range cases {
		tg, err := config.ParseTarget(c.target)
		if err != nil {
			t.Fatal(err)
		}
		tr, u := legBTarget(tg, "100", c.sips)
		if tr != c.transport || u.String() != c.uri {
			t.Errorf("legBTarget(%s, sips=%v) = %s %s, want %s %s", c.target, c.sips, tr, u.String(), c.transport, c.uri)
		}
	}
}

func TestSIPSOnly(t *testing.T) {
	var dec policy.Decision
	for _, s := range []string{"192.0.2.1:5060", "192.0.2.2:5061;transport=tls", "192.0.2.3:5060;transport=tcp", "192.0.2.4:5061;transport=tls"} {
		tg, _ := config.ParseTarget(s)
		dec.Targets = append(dec.Targets, tg)
	}
	t2, t4 := &policy.Trunk{}, &policy.Trunk{}
	dec.Trunks = []*policy.Trunk{nil, t2, nil, t4}
	sipReq := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "1", Host: "192.0.2.9"})
	if got := sipsOnly(sipReq, dec); len(got.Targets) != 4 || len(got.Trunks) != 4 {
		t.Errorf("a sip: call lost targets: %+v", got)
	}
	sipsReq := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sips", User: "1", Host: "192.0.2.9"})
	got := sipsOnly(sipsReq, dec)
	if len(got.Targets) != 2 || got.Targets[0].Host != "192.0.2.2" || got.Targets[1].Host != "192.0.2.4" {
		t.Errorf("a sips: call may only go to TLS targets, in order: %v", got.Targets)
	}
	if len(got.Trunks) != 2 || got.Trunk(0) != t2 || got.Trunk(1) != t4 {
		t.Errorf("trunks no longer parallel to targets: %v", got.Trunks)
	}
	dec.Trunks = nil // plain route targets: no trunks to keep parallel
	if got := sipsOnly(sipsReq, dec); len(got.Targets) != 2 || len(got.Trunks) != 0 {
		t.Errorf("route targets: %+v", got)
	}
	if sipsOverInsecure(sipReq) {
		t.Error("a sip: request flagged")
	}
	sipsReq.SetTransport("UDP")
	if !sipsOverInsecure(sipsReq) {
		t.Error("sips: over UDP not flagged")
	}
	sipsReq.SetTransport("TLS")
	if sipsOverInsecure(sipsReq) {
		t.Error("sips: over TLS flagged")
	}
}

// An HA record of a call with a SIPS TLS leg decodes, and the restored leg
// gets its TLS face back: TLS port in Via, sips: Contact.
func TestRecordTLSLegRestores(t *testing.T) {
	rec := sampleRecord(t)
	rec.Legs[0].Transport = "TLS"
	rec.Legs[0].Dialog.Target = mustURI(t, "sips:alice@203.0.113.10:5061")
	rec.Legs[1].Transport = "TLS"
	rec.Legs[1].Dialog.Target = mustURI(t, "sip:callee@198.51.100.10:5061;transport=tls")
	got, err := decodeRecord(encodeRecord(rec))
	if err != nil {
		t.Fatalf("a record with TLS legs: %v", err)
	}
	r := &Realm{cfg: config.Realm{Name: "carrier", Listen: "203.0.113.1:5060", UserAgent: "EdgeSBC", TLS: &config.RealmTLS{Port: 5061}}, laddr: sip.Addr{Port: 5060}}
	a, b := restoredLocal(r, got.Legs[0]), restoredLocal(r, got.Legs[1])
	ca, cb := a.Contact(), b.Contact()
	if a.Transport != "TLS" || a.Port != 5061 || !a.SIPS || ca.String() != "sips:sbc@203.0.113.1:5061" {
		t.Errorf("restored SIPS leg face %+v (Contact %s)", a, ca.String())
	}
	if b.SIPS || cb.String() != "sip:sbc@203.0.113.1:5061;transport=tls" {
		t.Errorf("restored TLS leg face %+v (Contact %s)", b, cb.String())
	}
}
