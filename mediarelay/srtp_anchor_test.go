package mediarelay

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"go.uber.org/goleak"
)

func srtpAnchor(t *testing.T, carrier, pbx SRTPPolicy) *Anchor {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	a, err := NewAnchor(AnchorConfig{
		Realms: []RealmMedia{
			{Name: "carrier", Addr: lo, MinPort: 46000, MaxPort: 46019, SRTP: carrier},
			{Name: "pbx", Addr: lo, MinPort: 47000, MaxPort: 47019, SRTP: pbx},
		},
		Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func cryptoSDP(port int, proto string, crypto ...string) []byte {
	s := fmt.Sprintf("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d %s 0\r\na=rtpmap:0 PCMU/8000\r\n", port, proto)
	for _, c := range crypto {
		s += "a=crypto:" + c + "\r\n"
	}
	return []byte(s)
}

// sphone is a loopback media end that speaks SRTP (send/recv contexts
// set) or plain RTP.
type sphone struct {
	t    *testing.T
	conn *net.UDPConn
	send *srtp.Context
	recv *srtp.Context
	key  CryptoAttr // the phone's own key (nil Key: plain)
}

func newSphone(t *testing.T, suite string) *sphone {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &sphone{t: t, conn: c}
	if suite != "" {
		if p.key, err = newCrypto(1, suite); err != nil {
			t.Fatal(err)
		}
		if p.send, err = encryptContext(p.key); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func (p *sphone) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// learn sets the receive key from the SBC's SDP.
func (p *sphone) learn(sdp []byte) {
	p.t.Helper()
	s, err := ParseSDP(sdp)
	if err != nil {
		p.t.Fatal(err)
	}
	if len(s.Media[0].Crypto) == 0 {
		p.recv = nil
		return
	}
	c, err := ParseCrypto(s.Media[0].Crypto[0])
	if err != nil {
		p.t.Fatal(err)
	}
	if p.recv, err = decryptContext(c); err != nil {
		p.t.Fatal(err)
	}
}

func spayload(seq uint16) []byte {
	b := make([]byte, 160)
	for i := range b {
		b[i] = byte(i*3) ^ byte(seq)
	}
	return b
}

// packet builds one (encrypted when the phone does SRTP) RTP packet.
func (p *sphone) packet(ssrc uint32, seq uint16) []byte {
	p.t.Helper()
	pk := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: ssrc}, Payload: spayload(seq)}
	b, err := pk.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	if p.send != nil {
		if b, err = p.send.EncryptRTP(nil, b, nil); err != nil {
			p.t.Fatal(err)
		}
	}
	return b
}

func (p *sphone) sendRaw(to netip.AddrPort, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

// expect reads one packet and checks it decrypts (or is plain) to seq's
// payload; the raw bytes must not carry the plaintext when SRTP is on.
func (p *sphone) expect(ssrc uint32, seq uint16) {
	p.t.Helper()
	buf := make([]byte, 1600)
	_ = p.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := p.conn.ReadFromUDP(buf)
	if err != nil {
		p.t.Fatalf("waiting for seq %d: %v", seq, err)
	}
	b := buf[:n]
	if p.recv != nil {
		if bytes.Contains(b, spayload(seq)[:32]) {
			p.t.Fatalf("seq %d arrived with its payload in the clear", seq)
		}
		if b, err = p.recv.DecryptRTP(nil, b, nil); err != nil {
			p.t.Fatalf("seq %d does not decrypt with the SBC's key: %v", seq, err)
		}
	}
	var pk rtp.Packet
	if err := pk.Unmarshal(b); err != nil || pk.SSRC != ssrc || pk.SequenceNumber != seq || !bytes.Equal(pk.Payload, spayload(seq)) {
		p.t.Fatalf("got ssrc %#x seq %d (%v), want %#x seq %d intact", pk.SSRC, pk.SequenceNumber, err, ssrc, seq)
	}
}

// nothing checks no packet arrives for a while.
func (p *sphone) nothing() {
	p.t.Helper()
	buf := make([]byte, 1600)
	_ = p.conn.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if n, _, err := p.conn.ReadFromUDP(buf); err == nil {
		p.t.Fatalf("a packet of %d bytes was forwarded", n)
	}
}

func sbcPort(t *testing.T, sdp []byte) netip.AddrPort {
	t.Helper()
	s, err := ParseSDP(sdp)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(s.Media[0].Addr, uint16(s.Media[0].Port))
}

func must(t *testing.T) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// SRTP from the carrier, plain RTP to the PBX: profiles and keys per leg,
// media both ways intact and encrypted on the carrier leg only, tampered
// and replayed packets dropped and counted, re-key by re-offer without a
// lost packet.
func TestSRTPToRTP(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) }) // after the anchor's Close
	a := srtpAnchor(t, SRTPPolicy{Mode: SRTPRequired}, SRTPPolicy{Mode: SRTPOff})
	ref := CallRef{ID: "s1", Realms: [2]string{"carrier", "pbx"}}
	car, pbx := newSphone(t, "AES_CM_128_HMAC_SHA1_80"), newSphone(t, "")

	offer := must(t)(a.Offer(ref, SideA, cryptoSDP(car.port(), "RTP/SAVP", car.key.value())))
	if s := string(offer); !strings.Contains(s, " RTP/AVP ") || strings.Contains(s, "crypto") {
		t.Fatalf("offer to the plain PBX:\n%s", s)
	}
	if !a.calls["s1"].streams[0].NeedsTransform() {
		t.Fatal("an SRTP offer's stream may be offloaded before the answer")
	}
	answer := must(t)(a.Answer(ref, SideB, cryptoSDP(pbx.port(), "RTP/AVP")))
	as, _ := ParseSDP(answer)
	if m := as.Media[0]; m.Proto != "RTP/SAVP" || len(m.Crypto) != 1 || !strings.HasPrefix(m.Crypto[0], "1 AES_CM_128_HMAC_SHA1_80 inline:") {
		t.Fatalf("answer to the carrier:\n%s", answer)
	}
	if strings.Contains(string(answer), car.key.value()[len("1 AES_CM_128_HMAC_SHA1_80 inline:"):]) {
		t.Fatal("the carrier's own key came back in the answer")
	}
	car.learn(answer)
	pbx.learn(offer)
	toA, toB := sbcPort(t, answer), sbcPort(t, offer)

	const ssA, ssB = 0xA, 0xB
	for seq := uint16(1); seq <= 20; seq++ {
		car.sendRaw(toA, car.packet(ssA, seq))
		pbx.expect(ssA, seq)
		pbx.sendRaw(toB, pbx.packet(ssB, seq))
		car.expect(ssB, seq)
	}
	st := a.calls["s1"].streams[0]
	if !st.NeedsTransform() {
		t.Fatal("an SRTP stream says it needs no transform")
	}

	t.Run("tampered dropped", func(t *testing.T) {
		b := car.packet(ssA, 21)
		b[len(b)-20] ^= 0x01
		car.sendRaw(toA, b)
		pbx.nothing()
		if s := st.Stats().A; s.SRTPAuthFailed != 1 {
			t.Fatalf("auth failures %d, want 1", s.SRTPAuthFailed)
		}
	})
	t.Run("replay dropped", func(t *testing.T) {
		b := car.packet(ssA, 22)
		car.sendRaw(toA, b)
		pbx.expect(ssA, 22)
		car.sendRaw(toA, b)
		pbx.nothing()
		if s := st.Stats().A; s.SRTPReplayed != 1 {
			t.Fatalf("replays %d, want 1", s.SRTPReplayed)
		}
	})
	t.Run("plain RTP from the carrier dropped", func(t *testing.T) {
		pk := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 23, SSRC: ssA}, Payload: spayload(23)}
		b, _ := pk.Marshal()
		car.sendRaw(toA, b)
		pbx.nothing()
	})

	t.Run("re-key by re-offer", func(t *testing.T) {
		sbcKey := as.Media[0].Crypto[0]
		oldSend := car.send
		newKey, _ := newCrypto(1, "AES_CM_128_HMAC_SHA1_80")
		must(t)(a.Offer(ref, SideA, cryptoSDP(car.port(), "RTP/SAVP", newKey.value())))
		// In flight under the old key while the re-INVITE is answered.
		car.sendRaw(toA, car.packet(ssA, 30))
		pbx.expect(ssA, 30)
		answer2 := must(t)(a.Answer(ref, SideB, cryptoSDP(pbx.port(), "RTP/AVP")))
		as2, _ := ParseSDP(answer2)
		if got := as2.Media[0].Crypto; len(got) != 1 || got[0] != sbcKey {
			t.Fatalf("the SBC's own key changed on a re-INVITE with the same suite")
		}
		car.sendRaw(toA, car.packet(ssA, 31)) // late, old key: still passes
		pbx.expect(ssA, 31)
		car.send, _ = encryptContext(newKey)
		for seq := uint16(32); seq < 40; seq++ {
			car.sendRaw(toA, car.packet(ssA, seq))
			pbx.expect(ssA, seq)
		}
		car.send = oldSend // the old key is retired once the new one worked
		car.sendRaw(toA, car.packet(ssA, 40))
		pbx.nothing()
	})
}

// SRTP on both legs with the SBC's own key on each: the relay decrypts
// with one leg's key and encrypts with the other's.
func TestSRTPToSRTPReencrypts(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, suite := range []string{"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM", "AEAD_AES_256_GCM"} {
		t.Run(suite, func(t *testing.T) {
			a := srtpAnchor(t, SRTPPolicy{Mode: SRTPRequired, Suites: []string{suite}}, SRTPPolicy{Mode: SRTPRequired, Suites: []string{suite}})
			ref := CallRef{ID: "ss", Realms: [2]string{"carrier", "pbx"}}
			car, pbx := newSphone(t, suite), newSphone(t, suite)
			offer := must(t)(a.Offer(ref, SideA, cryptoSDP(car.port(), "RTP/SAVP", car.key.value())))
			os, _ := ParseSDP(offer)
			if m := os.Media[0]; m.Proto != "RTP/SAVP" || len(m.Crypto) != 1 {
				t.Fatalf("offer:\n%s", offer)
			}
			k, _ := ParseCrypto(os.Media[0].Crypto[0])
			if k.sameKey(car.key) {
				t.Fatal("the carrier's key was passed to the PBX")
			}
			pbx.key.Tag = k.Tag
			answer := must(t)(a.Answer(ref, SideB, cryptoSDP(pbx.port(), "RTP/SAVP", pbx.key.value())))
			car.learn(answer)
			pbx.learn(offer)
			toA, toB := sbcPort(t, answer), sbcPort(t, offer)
			for seq := uint16(100); seq < 110; seq++ {
				car.sendRaw(toA, car.packet(1, seq))
				pbx.expect(1, seq)
				pbx.sendRaw(toB, pbx.packet(2, seq))
				car.expect(2, seq)
			}
			cm, _ := a.Media("ss")
			if cm.Streams[0].SRTPA != suite || cm.Streams[0].SRTPB != suite {
				t.Fatalf("admin view: %+v", cm.Streams[0])
			}
		})
	}
}

// Offers under each realm policy: what goes out, what is refused.
func TestSRTPPolicies(t *testing.T) {
	key := func() string { c, _ := newCrypto(1, "AES_CM_128_HMAC_SHA1_80"); return c.value() }
	cases := []struct {
		name          string
		carrier, pbx  SRTPMode
		offer         []byte
		refused       bool
		proto         string // of the offer to the PBX
		crypto        bool   // offer to the PBX carries a=crypto
		answerProto   string // of the answer to the carrier (PBX answers plain)
		answerCrypto  bool
		rejectedLines int
	}{
		{"savp into off refused", SRTPOff, SRTPOff, cryptoSDP(4000, "RTP/SAVP", key()), true, "", false, "", false, 0},
		{"plain into required refused", SRTPRequired, SRTPOff, cryptoSDP(4000, "RTP/AVP"), true, "", false, "", false, 0},
		{"savp with junk crypto refused", SRTPOptional, SRTPOff, cryptoSDP(4000, "RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:xx"), true, "", false, "", false, 0},
		{"savp with unsupported suite refused", SRTPOptional, SRTPOff, cryptoSDP(4000, "RTP/SAVP", "1 F8_128_HMAC_SHA1_80 inline:"+key30), true, "", false, "", false, 0},
		{"savp with mki 32 refused", SRTPOptional, SRTPOff, cryptoSDP(4000, "RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+key30+"|2^20|1:32"), true, "", false, "", false, 0},
		{"best effort into off answered plain", SRTPOff, SRTPOff, cryptoSDP(4000, "RTP/AVP", key()), false, "RTP/AVP", false, "RTP/AVP", false, 0},
		{"best effort into optional is SRTP", SRTPOptional, SRTPOff, cryptoSDP(4000, "RTP/AVP", key()), false, "RTP/AVP", false, "RTP/AVP", true, 0},
		{"best effort with junk into optional is plain", SRTPOptional, SRTPOff, cryptoSDP(4000, "RTP/AVP", "1 AES_CM_128_HMAC_SHA1_80 inline:xx"), false, "RTP/AVP", false, "RTP/AVP", false, 0},
		{"plain into optional pbx gets best effort", SRTPOff, SRTPOptional, cryptoSDP(4000, "RTP/AVP"), false, "RTP/AVP", true, "RTP/AVP", false, 0},
		{"plain into required pbx gets savp", SRTPOff, SRTPRequired, cryptoSDP(4000, "RTP/AVP"), false, "RTP/SAVP", true, "", false, 0},
		{"two m-lines, srtp wins", SRTPOptional, SRTPOff, twoLines(key()), false, "RTP/AVP", false, "RTP/SAVP", true, 1},
		{"two m-lines, off keeps plain", SRTPOff, SRTPOff, twoLines(key()), false, "RTP/AVP", false, "", false, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := srtpAnchor(t, SRTPPolicy{Mode: c.carrier}, SRTPPolicy{Mode: c.pbx})
			ref := CallRef{ID: "p", Realms: [2]string{"carrier", "pbx"}}
			out, err := a.Offer(ref, SideA, c.offer)
			if c.refused {
				if !errors.Is(err, ErrSRTPRefused) {
					t.Fatalf("offer: %v, want ErrSRTPRefused\n%s", err, out)
				}
				if strings.Contains(err.Error(), key30[:12]) {
					t.Fatalf("refusal echoes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), key30[:12]) {
				t.Fatalf("offer to the PBX carries the carrier's key:\n%s", out)
			}
			s, _ := ParseSDP(out)
			live, rejected := -1, 0
			for i, m := range s.Media {
				if m.Port == 0 {
					rejected++
				} else {
					live = i
				}
			}
			m := s.Media[live]
			if rejected != c.rejectedLines || m.Proto != c.proto || (len(m.Crypto) > 0) != c.crypto {
				t.Fatalf("offer to the PBX (want %s crypto=%v, %d rejected):\n%s", c.proto, c.crypto, c.rejectedLines, out)
			}
			if c.answerProto == "" {
				return
			}
			// The PBX answers plain RTP on each line (port 0 where rejected).
			ans := "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
			for _, m := range s.Media {
				port := 0
				if m.Port != 0 {
					port = 5000
				}
				ans += fmt.Sprintf("m=audio %d RTP/AVP 0\r\n", port)
			}
			back, err := a.Answer(ref, SideB, []byte(ans))
			if err != nil {
				t.Fatal(err)
			}
			bs, _ := ParseSDP(back)
			var bm Media
			for _, m := range bs.Media {
				if m.Port != 0 {
					bm = m
				}
			}
			if bm.Proto != c.answerProto || (len(bm.Crypto) > 0) != c.answerCrypto {
				t.Fatalf("answer to the carrier (want %s crypto=%v):\n%s", c.answerProto, c.answerCrypto, back)
			}
			for _, st := range a.calls["p"].streams {
				if st != nil && st.NeedsTransform() != c.answerCrypto {
					t.Fatalf("NeedsTransform %v with SRTP %v on the carrier leg", st.NeedsTransform(), c.answerCrypto)
				}
			}
		})
	}
}

func twoLines(crypto string) []byte {
	return []byte("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/SAVP 0\r\na=crypto:" + crypto + "\r\nm=audio 4002 RTP/AVP 0\r\n")
}

// Answers that break the SBC's SRTP offer are refused.
func TestSRTPBadAnswers(t *testing.T) {
	a := srtpAnchor(t, SRTPPolicy{Mode: SRTPOff}, SRTPPolicy{Mode: SRTPRequired})
	for i, c := range []struct{ name, answer string }{
		{"no crypto for savp", string(cryptoSDP(5000, "RTP/SAVP"))},
		{"tag not offered", string(cryptoSDP(5000, "RTP/SAVP", "7 AES_CM_128_HMAC_SHA1_80 inline:"+key30))},
		{"suite not offered for the tag", string(cryptoSDP(5000, "RTP/SAVP", "1 AEAD_AES_128_GCM inline:"+key28))},
		{"malformed", string(cryptoSDP(5000, "RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"))},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref := CallRef{ID: fmt.Sprint("b", i), Realms: [2]string{"carrier", "pbx"}}
			if _, err := a.Offer(ref, SideA, cryptoSDP(4000, "RTP/AVP")); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Answer(ref, SideB, []byte(c.answer)); !errors.Is(err, ErrSRTPRefused) {
				t.Fatalf("answer: %v, want ErrSRTPRefused", err)
			}
			a.End(ref.ID)
		})
	}
}

// SRTCP (rtcp-mux) from the SRTP leg arrives as plain RTCP on the other;
// plain RTCP from there arrives as SRTCP; a replayed SRTCP is dropped.
func TestSRTCPRelayed(t *testing.T) {
	a := srtpAnchor(t, SRTPPolicy{Mode: SRTPRequired}, SRTPPolicy{Mode: SRTPOff})
	ref := CallRef{ID: "rtcp", Realms: [2]string{"carrier", "pbx"}}
	car, pbx := newSphone(t, "AES_CM_128_HMAC_SHA1_80"), newSphone(t, "")
	mux := func(b []byte) []byte { return append(b, "a=rtcp-mux\r\n"...) }
	offer := must(t)(a.Offer(ref, SideA, mux(cryptoSDP(car.port(), "RTP/SAVP", car.key.value()))))
	answer := must(t)(a.Answer(ref, SideB, mux(cryptoSDP(pbx.port(), "RTP/AVP"))))
	car.learn(answer)
	toA, toB := sbcPort(t, answer), sbcPort(t, offer)
	// Latch both sides with RTP first.
	car.sendRaw(toA, car.packet(1, 1))
	pbx.expect(1, 1)
	pbx.sendRaw(toB, pbx.packet(2, 1))
	car.expect(2, 1)

	rr := func(ssrc uint32) []byte {
		b, err := (&rtcp.ReceiverReport{SSRC: ssrc, Reports: []rtcp.ReceptionReport{{SSRC: 7, FractionLost: 64, Jitter: 80}}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	read := func(p *sphone) []byte {
		buf := make([]byte, 1600)
		_ = p.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no RTCP: %v", err)
		}
		return buf[:n]
	}
	plain := rr(0xC0FFEE)
	enc, err := car.send.EncryptRTCP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	car.sendRaw(toA, enc)
	if got := read(pbx); !bytes.Equal(got, plain) {
		t.Fatalf("PBX got %x, want the plain RTCP %x", got, plain)
	}
	car.sendRaw(toA, enc) // replay
	pbx.nothing()
	if s := a.calls["rtcp"].streams[0].Stats().A; s.SRTPReplayed != 1 || s.RemoteFractionLost != 0.25 {
		t.Fatalf("replays %d, remote fraction lost %v (the RR is parsed after decryption)", s.SRTPReplayed, s.RemoteFractionLost)
	}
	back := rr(0xBEEF)
	pbx.sendRaw(toB, back)
	got := read(car)
	if bytes.Contains(got, back[8:]) {
		t.Fatal("RTCP toward the SRTP leg went out in the clear")
	}
	dec, err := car.recv.DecryptRTCP(nil, got, nil)
	if err != nil || !bytes.Equal(dec, back) {
		t.Fatalf("carrier's SRTCP does not decrypt to the PBX's RTCP: %v", err)
	}
}
