package mediarelay

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Real-world shaped samples. Written with LF; crlf() makes the CRLF variant.
const (
	sdpAsterisk = `v=0
o=root 1821628410 1821628410 IN IP4 10.1.1.20
s=Asterisk PBX 18.9.0
c=IN IP4 10.1.1.20
t=0 0
m=audio 17046 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
`
	sdpPolycom = `v=0
o=- 1700000000 1700000000 IN IP4 192.168.10.45
s=Polycom IP Phone
c=IN IP4 192.168.10.45
t=0 0
a=sendrecv
m=audio 2222 RTP/AVP 9 0 8 18 127
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:127 telephone-event/8000
a=fmtp:127 0-15
`
	sdpAudioVideo = `v=0
o=- 3891234567 3891234567 IN IP4 172.16.5.9
s=-
c=IN IP4 172.16.5.9
b=AS:2048
t=0 0
m=audio 5004 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
m=video 5006 RTP/AVP 96 97
c=IN IP4 172.16.5.10
b=TIAS:1920000
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
a=rtpmap:97 VP8/90000
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtcp-fb:97 ccm fir
a=rtcp-fb:* goog-remb
`
	sdpHoldSendonly = `v=0
o=user1 53655765 2353687638 IN IP4 10.9.8.7
s=-
c=IN IP4 10.9.8.7
t=0 0
m=audio 6000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=sendonly
`
	sdpHoldInactive = `v=0
o=user1 53655765 2353687639 IN IP4 10.9.8.7
s=-
c=IN IP4 10.9.8.7
t=0 0
m=audio 6000 RTP/AVP 8
a=inactive
`
	// RFC 2543 hold: Cisco gateways still send it.
	sdpHoldZero = `v=0
o=CiscoSystemsSIP-GW-UserAgent 4471 2 IN IP4 10.20.30.40
s=SIP Call
c=IN IP4 0.0.0.0
t=0 0
m=audio 18492 RTP/AVP 18 101
c=IN IP4 0.0.0.0
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
`
	sdpHoldZeroRecvonly = `v=0
o=- 1 2 IN IP4 10.20.30.41
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 18492 RTP/AVP 0
a=recvonly
`
	sdpRTCPMux = `v=0
o=- 20518 0 IN IP4 203.0.113.141
s=-
t=0 0
c=IN IP4 203.0.113.141
m=audio 54400 RTP/SAVPF 0 96
a=rtpmap:0 PCMU/8000
a=rtpmap:96 opus/48000/2
a=rtcp:54400
a=rtcp-mux
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32
`
	sdpRTCPMuxOnly = `v=0
o=- 20519 0 IN IP4 203.0.113.142
s=-
c=IN IP4 203.0.113.142
t=0 0
m=audio 54402 RTP/AVP 0
a=rtcp-mux
`
	sdpWebRTC = `v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS stream0
a=ice-options:trickle
m=audio 54400 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 198.51.100.77
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1467250027 1 udp 2122260223 192.168.1.5 54400 typ host generation 0
a=candidate:842163049 1 udp 1686052607 198.51.100.77 54400 typ srflx raddr 192.168.1.5 rport 54400 generation 0
a=candidate:3 1 tcp 1518280447 192.168.1.5 9 typ host tcptype active generation 0
a=end-of-candidates
a=ice-ufrag:EsAw
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1
a=ice-options:trickle
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:1001 cname:abc
`
	// Trickle ICE: c=0.0.0.0 is the ICE placeholder, not hold.
	sdpWebRTCTrickle = `v=0
o=- 8003 2 IN IP4 127.0.0.1
s=-
t=0 0
a=ice-ufrag:abcd
a=ice-pwd:0123456789abcdef012345
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=rtpmap:111 opus/48000/2
a=rtcp-mux
`
	sdpPortZero = `v=0
o=- 99 1 IN IP4 10.2.2.2
s=-
c=IN IP4 10.2.2.2
t=0 0
m=audio 16384 RTP/AVP 0 8
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 96
a=rtpmap:96 H264/90000
a=rtcp:16387 IN IP4 10.2.2.3
`
	sdpIPv6 = `v=0
o=alice 2890844526 2890844526 IN IP6 2001:db8::1
s=-
c=IN IP6 2001:db8::1
t=0 0
m=audio 49170 RTP/AVP 0 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
`
	// Session c= after t=: valid in practice, refused by strict parsers.
	// The a=rtcp carries an address (RFC 3605).
	sdpCAfterT = `v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=Call
t=0 0
c=IN IP4 10.47.16.5
m=audio 49170 RTP/AVP 0
a=rtcp:53020 IN IP4 126.16.64.4
a=rtpmap:0 PCMU/8000
`
	// Static-PT audio plus video with RTX, for filter rejection and apt=.
	sdpVideoRTX = `v=0
o=- 5 5 IN IP4 10.3.3.3
s=-
c=IN IP4 10.3.3.3
t=0 0
m=audio 7078 RTP/AVP 9 0
m=video 9078 RTP/AVP 97 98 96 99
a=rtpmap:97 VP8/90000
a=rtpmap:98 rtx/90000
a=fmtp:98 apt=97
a=rtcp-fb:97 nack
a=rtpmap:96 H264/90000
a=rtpmap:99 rtx/90000
a=fmtp:99 apt=96
a=rtcp:9079 IN IP4 10.3.3.4
`
)

// samples seeds the fuzz target too.
var samples = []string{
	sdpAsterisk, sdpPolycom, sdpAudioVideo, sdpHoldSendonly, sdpHoldInactive,
	sdpHoldZero, sdpHoldZeroRecvonly, sdpRTCPMux, sdpRTCPMuxOnly, sdpWebRTC,
	sdpWebRTCTrickle, sdpPortZero, sdpIPv6, sdpCAfterT, sdpVideoRTX,
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

var (
	sbcV4 = netip.MustParseAddr("203.0.113.5")
	sbcV6 = netip.MustParseAddr("2001:db8:ffff::10")
)

func rw(addr netip.Addr, codecs []string, ports ...int) Rewrite {
	return Rewrite{Addr: addr, Ports: ports, Codecs: codecs, SessID: "7001", Version: 3, Username: "EdgeSBC"}
}

func TestRewriteGolden(t *testing.T) {
	tests := []struct {
		name string
		in   string
		rw   Rewrite
		want string
	}{
		{"asterisk g711 pcma+dtmf", sdpAsterisk, rw(sbcV4, []string{"PCMA", "telephone-event"}, 40000), `v=0
o=EdgeSBC 7001 3 IN IP4 203.0.113.5
s=-
c=IN IP4 203.0.113.5
t=0 0
m=audio 40000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
`},
		{"audio+video h264 only", crlf(sdpAudioVideo), rw(sbcV4, []string{"pcmu", "telephone-event", "h264"}, 30000, 30002), `v=0
o=EdgeSBC 7001 3 IN IP4 203.0.113.5
s=-
c=IN IP4 203.0.113.5
b=AS:2048
t=0 0
m=audio 30000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
m=video 30002 RTP/AVP 96
c=IN IP4 203.0.113.5
b=TIAS:1920000
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
a=rtcp-fb:96 nack
a=rtcp-fb:96 nack pli
a=rtcp-fb:* goog-remb
`},
		{"endpoint identity stripped (ssrc cname, msid, u/e/p)", "v=0\r\no=bs 1 1 IN IP4 203.0.113.10\r\ns=-\r\nu=http://pbx.example.com/\r\ne=ops@example.com\r\np=+1 555 0100\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\na=msid-semantic: WMS s1\r\nm=audio 10000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ssrc:1234 cname:sip:bs@203.0.113.10\r\na=ssrc-group:FID 1234 5678\r\na=msid:s1 a1\r\n", rw(sbcV4, nil, 40030), `v=0
o=EdgeSBC 7001 3 IN IP4 203.0.113.5
s=-
c=IN IP4 203.0.113.5
t=0 0
m=audio 40030 RTP/AVP 0
a=rtpmap:0 PCMU/8000
`},
		{"rfc2543 hold becomes explicit sendonly", sdpHoldZero, rw(sbcV4, nil, 40010), `v=0
o=EdgeSBC 7001 3 IN IP4 203.0.113.5
s=-
c=IN IP4 203.0.113.5
t=0 0
m=audio 40010 RTP/AVP 18 101
c=IN IP4 203.0.113.5
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendonly
`},
		{"c= after t=, a=rtcp with address", sdpCAfterT, rw(sbcV4, nil, 40020), `v=0
o=EdgeSBC 7001 3 IN IP4 203.0.113.5
s=-
t=0 0
c=IN IP4 203.0.113.5
m=audio 40020 RTP/AVP 0
a=rtcp:40021
a=rtpmap:0 PCMU/8000
`},
		{"webrtc: ICE stripped, red and dtmf/8000 dropped", sdpWebRTC, rw(sbcV6, []string{"opus", "telephone-event"}, 40030), `v=0
o=EdgeSBC 7001 3 IN IP6 2001:db8:ffff::10
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
m=audio 40030 UDP/TLS/RTP/SAVPF 111 110
c=IN IP6 2001:db8:ffff::10
a=rtcp:40030
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:110 telephone-event/48000
`},
		{"rejected stream keeps port 0 and first format", sdpVideoRTX, rw(sbcV4, []string{"g722"}, 41000, 41002), `v=0
o=EdgeSBC 7001 3 IN IP4 203.0.113.5
s=-
c=IN IP4 203.0.113.5
t=0 0
m=audio 41000 RTP/AVP 9
m=video 0 RTP/AVP 97
a=rtpmap:97 VP8/90000
a=rtcp-fb:97 nack
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, sess, err := RewriteSDP([]byte(tt.in), tt.rw)
			if err != nil {
				t.Fatalf("RewriteSDP: %v", err)
			}
			if sess == nil || len(sess.Media) != len(tt.rw.Ports) {
				t.Fatalf("parsed session = %+v", sess)
			}
			if got, want := string(out), crlf(tt.want); got != want {
				t.Errorf("output mismatch\n got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// expect describes the property checks for one rewrite.
type expect struct {
	ports   []int      // m= ports in the output
	formats [][]string // m= formats in the output
	dirs    []string   // Direction of each stream as parsed from the input
	leak    []string   // text from the original that must be gone
}

func TestRewriteProperties(t *testing.T) {
	tests := []struct {
		name string
		in   string
		rw   Rewrite
		want expect
	}{
		{"polycom all codecs", crlf(sdpPolycom), rw(sbcV4, nil, 20000), expect{
			ports: []int{20000}, formats: [][]string{{"9", "0", "8", "18", "127"}}, dirs: []string{"sendrecv"},
			leak: []string{"192.168.10.45"}}},
		{"polycom g729 only drops unlisted dtmf", sdpPolycom, rw(sbcV4, []string{"G729"}, 20000), expect{
			ports: []int{20000}, formats: [][]string{{"18"}}, dirs: []string{"sendrecv"},
			leak: []string{"192.168.10.45", "telephone-event", "G722", "a=fmtp:127"}}},
		{"polycom g722+dtmf", sdpPolycom, rw(sbcV4, []string{"g722", "TELEPHONE-EVENT"}, 20000), expect{
			ports: []int{20000}, formats: [][]string{{"9", "127"}}, dirs: []string{"sendrecv"},
			leak: []string{"192.168.10.45", "PCMU", "annexb"}}},
		{"asterisk v6 sbc", sdpAsterisk, rw(sbcV6, nil, 20002), expect{
			ports: []int{20002}, formats: [][]string{{"0", "8", "101"}}, dirs: []string{"sendrecv"},
			leak: []string{"10.1.1.20", "IP4"}}},
		{"hold sendonly kept", sdpHoldSendonly, rw(sbcV4, nil, 20004), expect{
			ports: []int{20004}, formats: [][]string{{"8", "101"}}, dirs: []string{"sendonly"},
			leak: []string{"10.9.8.7"}}},
		{"hold inactive kept", sdpHoldInactive, rw(sbcV4, nil, 20006), expect{
			ports: []int{20006}, formats: [][]string{{"8"}}, dirs: []string{"inactive"},
			leak: []string{"10.9.8.7"}}},
		{"rfc2543 hold with recvonly is inactive", sdpHoldZeroRecvonly, rw(sbcV4, nil, 20008), expect{
			ports: []int{20008}, formats: [][]string{{"0"}}, dirs: []string{"inactive"},
			leak: []string{"0.0.0.0", "10.20.30.41", "recvonly"}}},
		{"rtcp-mux with a=rtcp", sdpRTCPMux, rw(sbcV4, nil, 20010), expect{
			ports: []int{20010}, formats: [][]string{{"0", "96"}}, dirs: []string{"sendrecv"},
			leak: []string{"203.0.113.141", "54400", "a=crypto", "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"}}},
		{"rtcp-mux without a=rtcp", sdpRTCPMuxOnly, rw(sbcV4, nil, 20012), expect{
			ports: []int{20012}, formats: [][]string{{"0"}}, dirs: []string{"sendrecv"},
			leak: []string{"203.0.113.142", "a=rtcp:"}}},
		{"webrtc all codecs", sdpWebRTC, rw(sbcV4, nil, 20014), expect{
			ports: []int{20014}, formats: [][]string{{"111", "63", "9", "0", "8", "13", "110", "126"}}, dirs: []string{"sendrecv"},
			leak: []string{"198.51.100.77", "192.168.1.5", "127.0.0.1", "0.0.0.0", "candidate", "ice-", "end-of-candidates"}}},
		{"webrtc pcmu: dtmf/48000 has no partner", sdpWebRTC, rw(sbcV4, []string{"pcmu", "telephone-event"}, 20016), expect{
			ports: []int{20016}, formats: [][]string{{"0", "126"}}, dirs: []string{"sendrecv"},
			leak: []string{"198.51.100.77", "192.168.1.5", "opus", "telephone-event/48000"}}},
		{"trickle 0.0.0.0 is not hold", sdpWebRTCTrickle, rw(sbcV4, nil, 20018), expect{
			ports: []int{20018}, formats: [][]string{{"111"}}, dirs: []string{"sendrecv"},
			leak: []string{"0.0.0.0", "ice-", "sendonly"}}},
		{"port 0 stream stays 0", sdpPortZero, rw(sbcV4, nil, 20020, 20022), expect{
			ports: []int{20020, 0}, formats: [][]string{{"0", "8"}, {"96"}}, dirs: []string{"sendrecv", "sendrecv"},
			leak: []string{"10.2.2.2", "10.2.2.3", "16387"}}},
		{"ipv6 to ipv4", sdpIPv6, rw(sbcV4, nil, 20024), expect{
			ports: []int{20024}, formats: [][]string{{"0", "101"}}, dirs: []string{"sendrecv"},
			leak: []string{"2001:db8::1", "IP6"}}},
		{"ipv6 to ipv6", crlf(sdpIPv6), rw(sbcV6, []string{"pcmu"}, 20026), expect{
			ports: []int{20026}, formats: [][]string{{"0"}}, dirs: []string{"sendrecv"},
			leak: []string{"2001:db8::1\r", "telephone-event", "IP4"}}},
		{"audio+video all", sdpAudioVideo, rw(sbcV4, nil, 20028, 20030), expect{
			ports: []int{20028, 20030}, formats: [][]string{{"0", "101"}, {"96", "97"}}, dirs: []string{"sendrecv", "sendrecv"},
			leak: []string{"172.16.5.9", "172.16.5.10"}}},
		{"audio only allowed: video rejected", sdpAudioVideo, rw(sbcV4, []string{"pcmu"}, 20032, 20034), expect{
			ports: []int{20032, 0}, formats: [][]string{{"0"}, {"96"}}, dirs: []string{"sendrecv", "sendrecv"},
			leak: []string{"172.16.5.9", "172.16.5.10", "VP8", "rtcp-fb:97", "telephone-event"}}},
		{"rtx follows its codec", sdpVideoRTX, rw(sbcV4, []string{"g722", "pcmu", "H264", "rtx"}, 20036, 20038), expect{
			ports: []int{20036, 20038}, formats: [][]string{{"9", "0"}, {"96", "99"}}, dirs: []string{"sendrecv", "sendrecv"},
			leak: []string{"10.3.3.3", "10.3.3.4", "VP8", "apt=97", "rtpmap:98", "9079"}}},
		{"rtx alone does not keep a stream", sdpVideoRTX, rw(sbcV4, []string{"pcmu", "rtx"}, 20040, 20042), expect{
			ports: []int{20040, 0}, formats: [][]string{{"0"}, {"97"}}, dirs: []string{"sendrecv", "sendrecv"},
			leak: []string{"10.3.3.3", "10.3.3.4", "rtx", "apt=", "a=rtcp:", "G722"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, in, err := RewriteSDP([]byte(tt.in), tt.rw)
			if err != nil {
				t.Fatalf("RewriteSDP: %v", err)
			}
			for i, m := range in.Media {
				if m.Direction != tt.want.dirs[i] {
					t.Errorf("input m[%d] Direction = %q, want %q", i, m.Direction, tt.want.dirs[i])
				}
			}
			for _, s := range tt.want.leak {
				if bytes.Contains(out, []byte(s)) {
					t.Errorf("output still contains %q:\n%s", s, out)
				}
			}
			checkRewritten(t, []byte(tt.in), out, tt.rw, in)
			got, _ := ParseSDP(out)
			for i, m := range got.Media {
				if m.Port != tt.want.ports[i] {
					t.Errorf("m[%d] port = %d, want %d", i, m.Port, tt.want.ports[i])
				}
				if !slices.Equal(m.Formats, tt.want.formats[i]) {
					t.Errorf("m[%d] formats = %v, want %v", i, m.Formats, tt.want.formats[i])
				}
			}
		})
	}
}

// checkRewritten asserts the invariants every rewritten body must meet.
func checkRewritten(t *testing.T, inBody, out []byte, rw Rewrite, in *Session) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\n")) || !bytes.HasSuffix(out, []byte("\r\n")) {
		t.Errorf("output is not strictly CRLF")
	}
	doc, err := parseDoc(out)
	if err != nil {
		t.Fatalf("output does not re-parse: %v\n%s", err, out)
	}
	got := doc.sess
	if got.OriginUser != rw.Username || got.OriginSessID != rw.SessID || got.OriginVersion != rw.Version {
		t.Errorf("o= = %s %s %d", got.OriginUser, got.OriginSessID, got.OriginVersion)
	}
	if len(got.Media) != len(in.Media) {
		t.Fatalf("%d m= lines out, %d in", len(got.Media), len(in.Media))
	}
	checkAddresses(t, out, rw.Addr)
	for i, m := range got.Media {
		orig := in.Media[i]
		if orig.Port == 0 && m.Port != 0 {
			t.Errorf("m[%d] was rejected, now port %d", i, m.Port)
		}
		if m.Port != 0 {
			checkActive(t, i, m, orig, rw)
		}
		if !isSubsequence(m.Formats, orig.Formats) {
			t.Errorf("m[%d] formats %v are not an in-order subset of %v (renumbered?)", i, m.Formats, orig.Formats)
		}
		checkDTMF(t, i, doc.media[i])
	}
	checkPreserved(t, inBody, out)
}

// checkAddresses: o= and every c= carry the SBC address, nothing else.
func checkAddresses(t *testing.T, out []byte, addr netip.Addr) {
	t.Helper()
	for _, l := range strings.Split(string(out), "\r\n") {
		if (strings.HasPrefix(l, "c=") || strings.HasPrefix(l, "o=")) && !strings.HasSuffix(l, " "+addr.String()) {
			t.Errorf("foreign address line %q", l)
		}
		if strings.HasPrefix(l, "a=rtcp:") && strings.Contains(l, " ") {
			t.Errorf("a=rtcp kept an address: %q", l)
		}
		if name, _, _ := strings.Cut(strings.TrimPrefix(l, "a="), ":"); strings.HasPrefix(l, "a=") && isICE(name) {
			t.Errorf("ICE attribute left: %q", l)
		}
	}
}

func checkActive(t *testing.T, i int, m, orig Media, rw Rewrite) {
	t.Helper()
	if m.Port != rw.Ports[i] {
		t.Errorf("m[%d] port = %d, want %d", i, m.Port, rw.Ports[i])
	}
	if m.Addr != rw.Addr {
		t.Errorf("m[%d] effective address = %v, want %v", i, m.Addr, rw.Addr)
	}
	if m.Direction != orig.Direction {
		t.Errorf("m[%d] direction %q became %q", i, orig.Direction, m.Direction)
	}
	want := rw.Ports[i] + 1
	if m.RTCPMux && orig.RTCPPort != orig.Port+1 { // had a=rtcp
		want = rw.Ports[i]
	}
	if m.RTCPPort != want {
		t.Errorf("m[%d] RTCP port = %d, want %d", i, m.RTCPPort, want)
	}
	for pt, name := range m.Codecs {
		if !allowedName(rw.Codecs, name) {
			t.Errorf("m[%d] PT %s %s is not allowed", i, pt, name)
		}
		if orig.Codecs[pt] != name {
			t.Errorf("m[%d] PT %s was %q, now %q", i, pt, orig.Codecs[pt], name)
		}
	}
}

func allowedName(list []string, name string) bool {
	return len(list) == 0 || slices.ContainsFunc(list, func(s string) bool { return strings.EqualFold(s, name) })
}

// checkDTMF: every telephone-event left has a voice codec of its clock rate.
func checkDTMF(t *testing.T, i int, ms *mediaSec) {
	t.Helper()
	if ms.m.Port == 0 {
		return
	}
	for _, pt := range ms.pts {
		if ms.names[pt] != "telephone-event" {
			continue
		}
		ok := slices.ContainsFunc(ms.pts, func(p int) bool { return !auxCodec[ms.names[p]] && ms.rates[p] == ms.rates[pt] })
		if !ok {
			t.Errorf("m[%d] telephone-event PT %d/%d has no partner codec", i, pt, ms.rates[pt])
		}
	}
}

// checkPreserved: lines the rewrite does not own come out unchanged, in order.
func checkPreserved(t *testing.T, inBody, out []byte) {
	t.Helper()
	owned := func(l string) bool {
		for _, p := range []string{"o=", "c=", "m=", "s=", "a=rtcp:", "a=sendonly", "a=inactive", "a=recvonly", "a=sendrecv"} {
			if strings.HasPrefix(l, p) {
				return true
			}
		}
		return l == ""
	}
	var outLines, inLines []string
	for _, l := range strings.Split(string(out), "\r\n") {
		if !owned(l) {
			outLines = append(outLines, l)
		}
	}
	for _, l := range strings.Split(strings.ReplaceAll(string(inBody), "\r\n", "\n"), "\n") {
		if !owned(l) {
			inLines = append(inLines, l)
		}
	}
	if !isSubsequence(outLines, inLines) {
		t.Errorf("kept lines changed or reordered:\n%q\nfrom\n%q", outLines, inLines)
	}
}

func isSubsequence(sub, full []string) bool {
	j := 0
	for _, s := range full {
		if j < len(sub) && sub[j] == s {
			j++
		}
	}
	return j == len(sub)
}

func TestParseSDP(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Media
	}{
		{"polycom", crlf(sdpPolycom), []Media{{
			Kind: "audio", Port: 2222, Proto: "RTP/AVP", Formats: []string{"9", "0", "8", "18", "127"},
			Addr: netip.MustParseAddr("192.168.10.45"), RTCPPort: 2223, Direction: "sendrecv",
			Codecs: map[string]string{"9": "g722", "0": "pcmu", "8": "pcma", "18": "g729", "127": "telephone-event"},
		}}},
		{"static PTs without rtpmap, ipv6", sdpIPv6, []Media{{
			Kind: "audio", Port: 49170, Proto: "RTP/AVP", Formats: []string{"0", "101"},
			Addr: netip.MustParseAddr("2001:db8::1"), RTCPPort: 49171, Direction: "sendrecv",
			Codecs: map[string]string{"0": "pcmu", "101": "telephone-event"},
		}}},
		{"a=rtcp with address, c= after t=", sdpCAfterT, []Media{{
			Kind: "audio", Port: 49170, Proto: "RTP/AVP", Formats: []string{"0"},
			Addr: netip.MustParseAddr("10.47.16.5"), RTCPPort: 53020, Direction: "sendrecv",
			Codecs: map[string]string{"0": "pcmu"},
		}}},
		{"rtcp-mux", sdpRTCPMux, []Media{{
			Kind: "audio", Port: 54400, Proto: "RTP/SAVPF", Formats: []string{"0", "96"},
			Addr: netip.MustParseAddr("203.0.113.141"), RTCPPort: 54400, RTCPMux: true, Direction: "sendrecv",
			Codecs: map[string]string{"0": "pcmu", "96": "opus"},
			Crypto: []string{"1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"},
		}}},
		{"rfc2543 hold", sdpHoldZero, []Media{{
			Kind: "audio", Port: 18492, Proto: "RTP/AVP", Formats: []string{"18", "101"},
			Addr: netip.MustParseAddr("0.0.0.0"), RTCPPort: 18493, Direction: "sendonly",
			Codecs: map[string]string{"18": "g729", "101": "telephone-event"},
		}}},
		{"port 0 and media c=", sdpPortZero, []Media{{
			Kind: "audio", Port: 16384, Proto: "RTP/AVP", Formats: []string{"0", "8"},
			Addr: netip.MustParseAddr("10.2.2.2"), RTCPPort: 16385, Direction: "sendrecv",
			Codecs: map[string]string{"0": "pcmu", "8": "pcma"},
		}, {
			Kind: "video", Port: 0, Proto: "RTP/AVP", Formats: []string{"96"},
			Addr: netip.MustParseAddr("10.2.2.2"), RTCPPort: 0, Direction: "sendrecv",
			Codecs: map[string]string{"96": "h264"},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSDP([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseSDP: %v", err)
			}
			if !reflect.DeepEqual(s.Media, tt.want) {
				t.Errorf("media\n got %+v\nwant %+v", s.Media, tt.want)
			}
		})
	}
	s, _ := ParseSDP([]byte(sdpAsterisk))
	if s.OriginUser != "root" || s.OriginSessID != "1821628410" || s.OriginVersion != 1821628410 {
		t.Errorf("origin = %+v", s)
	}
}

func TestParseHostile(t *testing.T) {
	const head = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\n"
	var many strings.Builder
	many.WriteString(head + "c=IN IP4 10.0.0.1\n")
	for range 40 {
		many.WriteString("m=audio 4000 RTP/AVP 0\n")
	}
	var attrs strings.Builder
	attrs.WriteString(head + "c=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\n")
	for range 257 {
		attrs.WriteString("a=x\n")
	}
	huge := sdpAsterisk + strings.Repeat("a=x-padding:"+strings.Repeat("z", 100)+"\n", 20<<10/113)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty body"},
		{"whitespace", " \r\n\r\n", "empty body"},
		{"only v=0", "v=0", "missing o="},
		{"no v=", strings.TrimPrefix(sdpAsterisk, "v=0\n"), "v="},
		{"v=1", strings.Replace(sdpAsterisk, "v=0", "v=1", 1), "version"},
		{"two bodies", sdpAsterisk + sdpAsterisk, "second v="},
		{"missing c=", head + "m=audio 4000 RTP/AVP 0\n", "no c= line"},
		{"m= bad port", head + "c=IN IP4 10.0.0.1\nm=audio 70000 RTP/AVP 0\n", "port"},
		{"m= port not a number", head + "c=IN IP4 10.0.0.1\nm=audio -1 RTP/AVP 0\n", "port"},
		{"m= port range", head + "c=IN IP4 10.0.0.1\nm=audio 4000/2 RTP/AVP 0\n", "port ranges"},
		{"m= no formats", head + "c=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP\n", "no formats"},
		{"m= short", head + "c=IN IP4 10.0.0.1\nm=audio\n", "m= needs"},
		{"m= bad PT", head + "c=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0 300\n", "payload type"},
		{"c= hostname", head + "c=IN IP4 pbx.example.com\nm=audio 4000 RTP/AVP 0\n", "not an IP"},
		{"c= family mismatch", head + "c=IN IP4 2001:db8::1\nm=audio 4000 RTP/AVP 0\n", "does not match"},
		{"c= short", head + "c=IN IP4\nm=audio 4000 RTP/AVP 0\n", "c= is not"},
		{"o= short", "v=0\no=- 1 IN IP4 10.0.0.1\n", "o= needs"},
		{"o= version", "v=0\no=- 1 x IN IP4 10.0.0.1\n", "session version"},
		{"two o=", head + "o=- 1 1 IN IP4 10.0.0.1\n", "second o="},
		{"o= after m=", head + "c=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\no=- 1 1 IN IP4 10.0.0.2\n", "o= inside a media"},
		{"a=rtcp garbage", head + "c=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\na=rtcp:abc\n", "a=rtcp"},
		{"garbage line", head + "hello world\n", "not a type=value"},
		{"upper-case type", head + "M=audio 4000 RTP/AVP 0\n", "not a type=value"},
		{"binary junk", "v=0\n\x00\x01\x02\xff\xfe", "not a type=value"},
		{"control char", head + "s=a\x00b\n", "control character"},
		{"long line", head + "a=" + strings.Repeat("x", 1100) + "\n", "exceeds 1024"},
		{"huge body", huge, "exceeds 16384"},
		{"40 m= lines", many.String(), "more than 32 m="},
		{"257 attributes", attrs.String(), "more than 256 attributes"},
		{"port 65535", head + "c=IN IP4 10.0.0.1\nm=audio 65535 RTP/AVP 0\n", "65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSDP([]byte(tt.in))
			if !errors.Is(err, ErrBadSDP) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseSDP err = %v, want ErrBadSDP with %q", err, tt.want)
			}
			out, sess, err := RewriteSDP([]byte(tt.in), rw(sbcV4, nil, 40000))
			if !errors.Is(err, ErrBadSDP) || out != nil || sess != nil {
				t.Fatalf("RewriteSDP = %q, %v, %v; want ErrBadSDP", out, sess, err)
			}
		})
	}
}

func TestRewriteErrors(t *testing.T) {
	t.Run("no codec", func(t *testing.T) {
		out, sess, err := RewriteSDP([]byte(sdpAsterisk), rw(sbcV4, []string{"g729", "telephone-event"}, 40000))
		if !errors.Is(err, ErrNoCodec) || out != nil {
			t.Fatalf("err = %v, out = %q; want ErrNoCodec", err, out)
		}
		if sess == nil || len(sess.Media) != 1 {
			t.Errorf("parsed session not returned with ErrNoCodec: %+v", sess)
		}
	})
	t.Run("only dtmf left is no codec", func(t *testing.T) {
		_, _, err := RewriteSDP([]byte(sdpPolycom), rw(sbcV4, []string{"telephone-event"}, 40000))
		if !errors.Is(err, ErrNoCodec) {
			t.Fatalf("err = %v, want ErrNoCodec", err)
		}
	})
	t.Run("all streams already rejected is fine", func(t *testing.T) {
		in := strings.Replace(sdpAsterisk, "m=audio 17046", "m=audio 0", 1)
		out, _, err := RewriteSDP([]byte(in), rw(sbcV4, []string{"g729"}, 40000))
		if err != nil || !bytes.Contains(out, []byte("m=audio 0 RTP/AVP 0 8 101\r\n")) {
			t.Fatalf("err = %v, out = %q", err, out)
		}
	})
	bad := []struct {
		name string
		rw   Rewrite
	}{
		{"ports too few", rw(sbcV4, nil)},
		{"ports too many", rw(sbcV4, nil, 40000, 40002)},
		{"port out of range", rw(sbcV4, nil, 65535)},
		{"no addr", rw(netip.Addr{}, nil, 40000)},
		{"unspecified addr", rw(netip.IPv4Unspecified(), nil, 40000)},
		{"no sessid", Rewrite{Addr: sbcV4, Ports: []int{40000}}},
		{"username with space", Rewrite{Addr: sbcV4, Ports: []int{40000}, SessID: "1", Username: "Edge SBC"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			out, sess, err := RewriteSDP([]byte(sdpAsterisk), tt.rw)
			if err == nil || errors.Is(err, ErrBadSDP) || out != nil || sess == nil {
				t.Fatalf("err = %v, out = %q, sess = %v; want a non-ErrBadSDP config error", err, out, sess)
			}
		})
	}
}

func TestRewriteDefaultsAndLimits(t *testing.T) {
	t.Run("empty username is -", func(t *testing.T) {
		out, _, err := RewriteSDP([]byte(sdpAsterisk), Rewrite{Addr: sbcV4, Ports: []int{40000}, SessID: "9", Version: 1})
		if err != nil || !bytes.Contains(out, []byte("\r\no=- 9 1 IN IP4 203.0.113.5\r\n")) {
			t.Fatalf("err = %v, out = %q", err, out)
		}
	})
	t.Run("attributes of PTs not on the m= line are left alone", func(t *testing.T) {
		in := sdpAsterisk + "a=rtpmap:102 G726-32/8000\na=fmtp:* x\n"
		out, _, err := RewriteSDP([]byte(in), rw(sbcV4, []string{"pcmu"}, 40000))
		if err != nil || !bytes.HasSuffix(out, []byte("\r\na=sendrecv\r\na=rtpmap:102 G726-32/8000\r\na=fmtp:* x\r\n")) ||
			bytes.Contains(out, []byte("PCMA")) {
			t.Fatalf("err = %v, out = %q", err, out)
		}
	})
	t.Run("4in6 addr written as IP4", func(t *testing.T) {
		out, _, err := RewriteSDP([]byte(sdpAsterisk), rw(netip.MustParseAddr("::ffff:203.0.113.5"), nil, 40000))
		if err != nil || !bytes.Contains(out, []byte("c=IN IP4 203.0.113.5\r\n")) {
			t.Fatalf("err = %v, out = %q", err, out)
		}
	})
	t.Run("output growth past the body limit is an error", func(t *testing.T) {
		// ~16 KiB of c= lines: IPv6 rewriting plus CRLF makes them longer.
		var b strings.Builder
		b.WriteString("v=0\no=- 1 1 IN IP4 1.1.1.1\nm=audio 4000 RTP/AVP 0\n")
		for b.Len() < maxBody-20 {
			b.WriteString("c=IN IP4 1.1.1.1\n")
		}
		_, _, err := RewriteSDP([]byte(b.String()), rw(sbcV6, nil, 40000))
		if !errors.Is(err, ErrBadSDP) {
			t.Fatalf("err = %v, want ErrBadSDP", err)
		}
	})
}
