package policy

import "testing"

func TestScanners(t *testing.T) {
	s := NewScanners([]string{"friendly-scanner", "sipvicious", "sipcli"})
	for _, tc := range []struct {
		name, msg string
		want      bool
	}{
		{"svmap", "OPTIONS sip:100@203.0.113.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.10:5061\r\nUser-Agent: friendly-scanner\r\n\r\n", true},
		{"case and spacing", "REGISTER sip:x SIP/2.0\r\nuser-agent :  SIPVicious 0.3\r\n\r\n", true},
		{"sipcli", "INVITE sip:x SIP/2.0\r\nUser-Agent: sipcli/v1.8\r\n\r\n", true},
		{"phone", "INVITE sip:x SIP/2.0\r\nUser-Agent: Yealink SIP-T46S\r\n\r\n", false},
		{"in the body only", "INVITE sip:x SIP/2.0\r\nContent-Length: 30\r\n\r\nUser-Agent: friendly-scanner\r\n", false},
		{"in another header", "INVITE sip:x SIP/2.0\r\nSubject: friendly-scanner\r\n\r\n", false},
		{"no headers end", "OPTIONS sip:x SIP/2.0\nUser-Agent: sipcli", true},
		{"empty", "", false},
	} {
		if got := s.Match([]byte(tc.msg)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if NewScanners(nil).Match([]byte("X sip:x SIP/2.0\r\nUser-Agent: sipcli\r\n\r\n")) {
		t.Error("an empty list must match nothing")
	}
}
