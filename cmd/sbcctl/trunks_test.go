package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/api"
)

func TestPrintTrunks(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	list := []api.Trunk{
		{Name: "a", Realm: "carrier", Up: true,
			Targets: []api.TrunkTarget{
				{Target: "203.0.113.10:5060;transport=udp", State: "up", LastCode: 200, Probes: 12},
				{Target: "203.0.113.11:5060;transport=udp", State: "down", Probes: 12, Failures: 5},
			},
			Registration: &api.TrunkRegistration{State: "registered", Expires: 600, Next: now.Add(5 * time.Minute)}},
		{Name: "b", Realm: "carrier", Up: false, DNSError: "SRV _sip._udp.b.example: timeout",
			Registration: &api.TrunkRegistration{State: "failed", LastCode: 403}},
	}
	var out bytes.Buffer
	if err := printTrunks(&out, list, now); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"registered", "600s", "5m0s", "203.0.113.11:5060;transport=udp  down", "failed (403)", "(unresolved)", "DNS: SRV _sip._udp.b.example: timeout", "2 trunks"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
