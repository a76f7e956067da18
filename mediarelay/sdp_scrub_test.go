package mediarelay

import (
	"strings"
	"testing"
)

// TestRewriteScrubsAddresses: session name, information and key lines and
// attributes that carry the far side's addresses do not cross; the
// attributes a call needs (T.38's, DTLS fingerprint, codecs) do, unchanged.
func TestRewriteScrubsAddresses(t *testing.T) {
	const head = "v=0\r\no=pbx 1 1 IN IP4 10.1.1.20\r\ns=pbx01.corp.example 10.1.1.20\r\ni=call from 10.1.1.20\r\nk=clear:s3cret\r\nc=IN IP4 10.1.1.20\r\nt=0 0\r\n"
	for _, tc := range []struct {
		name, body string
		gone, kept []string
	}{
		{"session lines", head + "a=x-vendor:host=10.1.1.21\r\nm=audio 4000 RTP/AVP 0\r\n",
			[]string{"pbx01", "10.1.1.", "s3cret", "i=", "k=", "x-vendor"}, []string{"s=-\r\n", "m=audio "}},
		{"media lines", head + "m=audio 4000 RTP/AVP 0\r\ni=voice\r\nk=prompt\r\na=x-candidate-ipv6:fd00::1 4000\r\na=ice-pacing:50\r\na=candidate-ext:1\r\na=x-relay:[fd00::2]:5060\r\na=ptime:20\r\n",
			[]string{"fd00", "ice-pacing", "candidate", "x-relay", "i=voice", "k=prompt"}, []string{"a=ptime:20\r\n"}},
		{"msrp path", head + "m=message 2855 TCP/MSRP *\r\na=accept-types:text/plain\r\na=path:msrp://10.1.1.20:2855/kjh;tcp\r\n",
			[]string{"a=path", "10.1.1."}, []string{"a=accept-types:text/plain\r\n"}},
		{"t38 and dtls kept", head + "m=image 4000 udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\na=T38FaxRateManagement:transferredTCF\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n" +
			"m=audio 4002 UDP/TLS/RTP/SAVPF 0\r\na=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\na=setup:actpass\r\n",
			[]string{"10.1.1."}, []string{"a=T38FaxVersion:0\r\n", "a=T38MaxBitRate:14400\r\n", "a=T38FaxRateManagement:transferredTCF\r\n", "a=T38FaxUdpEC:t38UDPRedundancy\r\n", "a=fingerprint:sha-256 D2:FA:0E", "a=setup:actpass\r\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := strings.Count(tc.body, "m=")
			ports := make([]int, n)
			for i := range ports {
				ports[i] = 40000 + 2*i
			}
			out, _, err := RewriteSDP([]byte(tc.body), rw(sbcV4, nil, ports...))
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range tc.gone {
				if strings.Contains(string(out), g) {
					t.Errorf("%q crossed:\n%s", g, out)
				}
			}
			for _, k := range tc.kept {
				if !strings.Contains(string(out), k) {
					t.Errorf("%q lost:\n%s", k, out)
				}
			}
		})
	}
}

func TestHoldsIP(t *testing.T) {
	for val, want := range map[string]bool{
		"10.0.0.1": true, "host=10.0.0.1": true, "10.0.0.1:5060": true, "[2001:db8::1]:5060": true,
		"fd00::1 4000": true, "msrp://10.0.0.1:2855/a;tcp": true, "a@192.0.2.1": true,
		"0-15": false, "annexb=no": false, "sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24": false,
		"transferredTCF": false, "PCMU/8000": false, "1.2": false, "": false, "profile-level-id=42e01f;level-asymmetry-allowed=1": false,
	} {
		if got := holdsIP(val); got != want {
			t.Errorf("holdsIP(%q) = %v, want %v", val, got, want)
		}
	}
}
