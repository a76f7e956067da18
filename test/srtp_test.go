package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// srtpConfig: SRTP required toward the carrier, plain RTP toward the PBX,
// debug logging (so the no-keys-in-logs check covers the most output).
func srtpConfig(t *testing.T, carrier, enterprise string) string {
	t.Helper()
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", media: {ports: 30000-30999, srtp: %s}}
  - {name: enterprise, listen: "%s:5060", media: {ports: 40000-40999, srtp: %s}}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%s:5060"]}
media: {timeout: 30s}
log: {level: debug}
`, sbcExt, carrier, sbcInt, enterprise, pbxHost, carrierHost)
	p := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func savpSDP(ip string, port, version int, key testphone.SRTPKey) string {
	return fmt.Sprintf("v=0\r\no=phone 4242 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=crypto:%s\r\na=sendrecv\r\n",
		version, ip, ip, port, key.Attr())
}

// sbcKey reads the SBC's a=crypto from an SDP it sent to the carrier.
func sbcKey(t *testing.T, m sip.Message) testphone.SRTPKey {
	t.Helper()
	s, err := mediarelay.ParseSDP(m.Body())
	if err != nil {
		t.Fatal(err)
	}
	md := s.Media[0]
	if md.Proto != "RTP/SAVP" || len(md.Crypto) != 1 {
		t.Fatalf("SDP to the carrier is not RTP/SAVP with one a=crypto:\n%s", m.Body())
	}
	k, err := testphone.ParseSRTPKey(md.Crypto[0])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// plainTowardPBX requires the SDP sent into the enterprise to be plain
// RTP/AVP without any key.
func plainTowardPBX(t *testing.T, m sip.Message, keys ...testphone.SRTPKey) mediarelay.Media {
	t.Helper()
	md := sdpMedia(t, m, sbcInt, "203.0.113.")
	body := string(m.Body())
	if md.Proto != "RTP/AVP" || strings.Contains(body, "crypto") {
		t.Fatalf("SDP to the PBX is not plain RTP/AVP:\n%s", body)
	}
	for _, k := range keys {
		if strings.Contains(m.String(), k.Inline()) {
			t.Fatal("a carrier key crossed to the PBX")
		}
	}
	return md
}

// clearCount counts captured datagrams holding the plaintext payload of
// any packet first..first+n-1 of the streams.
func clearCount(pkts [][]byte, first uint16, n int, ssrcs ...uint32) (clear, total int) {
	for _, p := range pkts {
		if len(p) < 12 {
			continue
		}
		total++
		for _, ss := range ssrcs {
			for i := 0; i < n; i++ {
				if bytes.Contains(p, testphone.Payload(ss, first+uint16(i))[:40]) {
					clear++
				}
			}
		}
	}
	return clear, total
}

// A carrier phone that requires SRTP calls a plain-RTP PBX through sbcd:
// per-leg profiles and keys, audio both ways intact, nothing in the clear
// on the carrier's wire (and everything in the clear on the PBX's, which
// proves the capture sees payloads), tampered and replayed packets dropped
// and counted, re-keying by re-INVITE without losing a packet, and no key
// in the admin API, the metrics or the debug log.
func TestSRTPCarrierToPlainPBX(t *testing.T) {
	needLab(t)
	s := startSBCD(t, srtpConfig(t, "required", "off"))
	caller := testphone.New(t, nsSocket(t, "car", carrierHost, 5062))
	callee := testphone.New(t, nsSocket(t, "ent", pbxHost, 5060))
	aRTP := testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 16000))
	bRTP := testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 18000))
	wait := 3 * time.Second
	sbcA := sbcExt + ":5060"
	keyA := testphone.NewSRTPKey(1)

	t.Run("plain offer into required realm is 488", func(t *testing.T) {
		caller.Invite(sbcA, "1000", "srtp-refused", offerSDP(carrierHost, 16000, "sendrecv", 1))
		caller.ExpectResponse(488, sip.INVITE, wait)
		callee.Quiet(300*time.Millisecond, func(m sip.Message) bool { return true }, "an INVITE for a refused offer")
	})

	caller.Invite(sbcA, "1000", "srtp-1", savpSDP(carrierHost, 16000, 1, keyA))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	mB := plainTowardPBX(t, inv, keyA)
	callee.Answer(inv, 200, "OK", "sm", offerSDP(pbxHost, 18000, "sendrecv", 1))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	mA := sdpMedia(t, ok, sbcExt, "198.51.100.")
	keyS := sbcKey(t, ok)
	if bytes.Equal(keyS.KeySalt, keyA.KeySalt) || keyS.Tag != 1 {
		t.Fatalf("the SBC answered with tag %d and the caller's own key: %v", keyS.Tag, bytes.Equal(keyS.KeySalt, keyA.KeySalt))
	}
	dA := testphone.CallerDialog(ok, sbcA)
	caller.Ack(dA, 1, "s-ack")
	callee.ExpectRequest(sip.ACK, wait)
	aTo := netip.AddrPortFrom(mA.Addr, uint16(mA.Port))
	bTo := netip.AddrPortFrom(mB.Addr, uint16(mB.Port))
	if err := aRTP.SetSendKey(&keyA); err != nil {
		t.Fatal(err)
	}
	if err := aRTP.SetRecvKey(&keyS); err != nil {
		t.Fatal(err)
	}

	t.Run("audio both ways, encrypted on the carrier wire only", func(t *testing.T) {
		ext := startCaptureFilter(t, "car", "car0", "udp portrange 16000-18999")
		in := startCaptureFilter(t, "ent", "ent0", "udp portrange 16000-18999")
		exchangeRTP(t, aRTP, bRTP, aTo, bTo, 0xA1, 0xB1, 1000, 100)
		if aRTP.AuthFailed() != 0 || aRTP.ClearSeen() != 0 {
			t.Fatalf("carrier phone: %d packets failed to decrypt, %d in the clear", aRTP.AuthFailed(), aRTP.ClearSeen())
		}
		clear, total := clearCount(ext.stop(t), 1000, 100, 0xA1, 0xB1)
		if total < 190 || clear != 0 {
			t.Fatalf("carrier wire: %d of %d RTP datagrams carried a plaintext payload", clear, total)
		}
		clear, total = clearCount(in.stop(t), 1000, 100, 0xA1, 0xB1)
		if total < 190 || clear < 190 {
			t.Fatalf("PBX wire (plain RTP): only %d of %d datagrams in the clear; the capture check is blind", clear, total)
		}
	})

	id := onlyCallID(t, s)
	t.Run("tampered and replayed packets dropped and counted", func(t *testing.T) {
		good, err := aRTP.Packet(0xA2, 50)
		if err != nil {
			t.Fatal(err)
		}
		bad := bytes.Clone(good)
		bad[len(bad)-15] ^= 0x40 // a payload bit: the auth tag no longer fits
		for _, b := range [][]byte{bad, good, good, good} {
			if err := aRTP.SendRaw(aTo, b); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Then the next packet, a marker: once it is through, every copy
		// before it has been dealt with.
		next, err := aRTP.Packet(0xA2, 51)
		if err != nil {
			t.Fatal(err)
		}
		if err := aRTP.SendRaw(aTo, next); err != nil {
			t.Fatal(err)
		}
		bRTP.WaitFor(0xA2, 2, 2*time.Second)
		if got := bRTP.Received(0xA2); len(got) != 2 || got[0] != 50 || got[1] != 51 {
			t.Fatalf("the PBX got sequence numbers %v, want 50 once, then the marker 51", got)
		}
		var ci struct {
			Media mediarelay.CallMedia `json:"media"`
		}
		b, err := s.get("/api/v1/calls/" + id)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &ci); err != nil {
			t.Fatal(err)
		}
		st := ci.Media.Streams[0]
		if st.FromA.SRTPAuthFailed != 1 || st.FromA.SRTPReplayed != 2 || st.SRTPA != "AES_CM_128_HMAC_SHA1_80" || st.SRTPB != "" {
			t.Fatalf("admin view: %s", b)
		}
		if n := s.metric(t, "sbc_media_srtp_dropped_total", `reason="auth"`); n != 1 {
			t.Fatalf("sbc_media_srtp_dropped_total{reason=auth} = %v", n)
		}
		if n := s.metric(t, "sbc_media_srtp_dropped_total", `reason="replay"`); n != 2 {
			t.Fatalf("sbc_media_srtp_dropped_total{reason=replay} = %v", n)
		}
	})

	keyA2 := testphone.NewSRTPKey(1)
	t.Run("re-key by re-INVITE without a gap", func(t *testing.T) {
		const n = 150 // 3 s of 20 ms audio, the re-INVITE in the middle
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = aRTP.Send(aTo, 0xA3, 3000, n, 20*time.Millisecond) }()
		go func() { defer wg.Done(); _ = bRTP.Send(bTo, 0xB3, 3000, n, 20*time.Millisecond) }()
		time.Sleep(time.Second)
		caller.Request(dA, "INVITE", 2, "rekey", savpSDP(carrierHost, 16000, 2, keyA2))
		re := callee.ExpectRequest(sip.INVITE, wait)
		plainTowardPBX(t, re, keyA, keyA2)
		callee.Answer(re, 200, "OK", "", offerSDP(pbxHost, 18000, "sendrecv", 2))
		res := caller.ExpectResponse(200, sip.INVITE, wait)
		if k := sbcKey(t, res); !bytes.Equal(k.KeySalt, keyS.KeySalt) {
			// A new SBC key is allowed too; the phone follows it.
			if err := aRTP.SetRecvKey(&k); err != nil {
				t.Fatal(err)
			}
			keyS = k
		}
		// RFC 4568: the offerer sends with the new key once it has the answer.
		if err := aRTP.SetSendKey(&keyA2); err != nil {
			t.Fatal(err)
		}
		caller.Ack(dA, 2, "rekey-ack")
		callee.ExpectRequest(sip.ACK, wait)
		wg.Wait()
		bRTP.WaitFor(0xA3, n, 2*time.Second)
		aRTP.WaitFor(0xB3, n, 2*time.Second)
		if err := bRTP.CheckStream(0xA3, 3000, n); err != nil {
			t.Fatalf("carrier to PBX across the re-key: %v", err)
		}
		if err := aRTP.CheckStream(0xB3, 3000, n); err != nil {
			t.Fatalf("PBX to carrier across the re-key: %v", err)
		}
		// The old key is retired once the new one has been used.
		if err := aRTP.SetSendKey(&keyA); err != nil {
			t.Fatal(err)
		}
		_ = aRTP.Send(aTo, 0xA4, 1, 5, 5*time.Millisecond)
		// A marker under the current key: once it is through, the five
		// before it have been dealt with.
		if err := aRTP.SetSendKey(&keyA2); err != nil {
			t.Fatal(err)
		}
		rtpMarker(t, aRTP, bRTP, aTo, 0xA4F)
		if got := bRTP.Received(0xA4); len(got) != 0 {
			t.Fatalf("%d packets under the retired key were forwarded", len(got))
		}
	})

	t.Run("no key in the admin API, metrics or log", func(t *testing.T) {
		var out []byte
		for _, p := range []string{"/api/v1/calls", "/api/v1/calls/" + id, "/metrics"} {
			b, err := s.get(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
		out = append(out, s.log.Bytes()...)
		for _, k := range []testphone.SRTPKey{keyA, keyA2, keyS} {
			if bytes.Contains(out, []byte(k.Inline())) || bytes.Contains(out, []byte(k.Inline()[:20])) {
				t.Fatal("an SRTP key appears in the admin API, metrics or log")
			}
		}
		if !bytes.Contains(out, []byte("AES_CM_128_HMAC_SHA1_80")) {
			t.Fatal("the admin API does not name the suite (is the check looking at the right output?)")
		}
	})

	caller.Request(dA, "BYE", 3, "bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
}
