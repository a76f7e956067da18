package mediarelay

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

func stateAnchor(t *testing.T) *Anchor {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	a, err := NewAnchor(AnchorConfig{
		Realms: []RealmMedia{
			{Name: "carrier", Addr: lo, MinPort: 46100, MaxPort: 46119, SRTP: SRTPPolicy{Mode: SRTPRequired}},
			{Name: "pbx", Addr: lo, MinPort: 47100, MaxPort: 47119},
		},
		Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// An SRTP (carrier) to plain RTP (PBX) call taken as State, its SRTP
// bytes copied, and Restored on a second anchor after the first is gone:
// media both ways goes on with the same keys (no re-key), across a
// sequence wrap before the hand-over (the ROC of both directions is in
// the state), the SBC's SRTCP toward the carrier is not taken for a
// replay, and tampered or plain packets from the carrier are still
// dropped. The state never formats its keys.
func TestSRTPStateRestore(t *testing.T) {
	a1 := stateAnchor(t)
	closed := false
	t.Cleanup(func() {
		if !closed {
			a1.Close()
		}
	})
	changes := make(chan string, 100)
	a1.OnChange(func(id string) {
		select {
		case changes <- id:
		default:
		}
	})
	ref := CallRef{ID: "hs", Realms: [2]string{"carrier", "pbx"}}
	car, pbx := newSphone(t, "AES_CM_128_HMAC_SHA1_80"), newSphone(t, "")
	mux := func(b []byte) []byte { return append(b, "a=rtcp-mux\r\n"...) }
	offer := must(t)(a1.Offer(ref, SideA, mux(cryptoSDP(car.port(), "RTP/SAVP", car.key.value()))))
	answer := must(t)(a1.Answer(ref, SideB, mux(cryptoSDP(pbx.port(), "RTP/AVP"))))
	car.learn(answer)
	toA, toB := sbcPort(t, answer), sbcPort(t, offer)

	// Both directions cross the sequence wrap on a1: ROC 1.
	const ssA, ssB = 0xA, 0xB
	seq := uint16(65530)
	for range 12 {
		car.sendRaw(toA, car.packet(ssA, seq))
		pbx.expect(ssA, seq)
		pbx.sendRaw(toB, pbx.packet(ssB, seq))
		car.expect(ssB, seq)
		seq++
	}
	rr := func(ssrc uint32) []byte {
		b, err := (&rtcp.ReceiverReport{SSRC: ssrc, Reports: []rtcp.ReceptionReport{{SSRC: 7}}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	readRTCP := func() {
		t.Helper()
		buf := make([]byte, 1600)
		_ = car.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := car.conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no SRTCP at the carrier: %v", err)
		}
		if _, err := car.recv.DecryptRTCP(nil, buf[:n], nil); err != nil {
			t.Fatalf("carrier's SRTCP does not decrypt: %v", err)
		}
	}
	for range 3 {
		pbx.sendRaw(toB, rr(ssB))
		readRTCP()
	}
	// The wrap and the first SRTCP told the record to follow.
	deadline := time.After(2 * time.Second)
	for got := false; !got; {
		select {
		case <-changes:
			got = true
		case <-deadline:
			t.Fatal("no change reported for the ROC or SRTCP mark")
		}
	}

	st, ok := a1.State("hs")
	if !ok || len(st.SRTP) == 0 {
		t.Fatalf("no SRTP state: %v", ok)
	}
	lines, err := decodeSRTPState(st.SRTP)
	if err != nil || len(lines) != 1 || lines[0].keys[SideA] == nil || lines[0].keys[SideB] != nil {
		t.Fatalf("state decodes to %d lines, %v", len(lines), err)
	}
	var rocA, rocB uint32
	for _, s := range lines[0].ssrcs[SideA] {
		if s.ssrc == ssA {
			rocA = s.dec
		}
	}
	for _, s := range lines[0].ssrcs[SideB] {
		if s.ssrc == ssB {
			rocB = s.enc
		}
	}
	if rocA != 1 || rocB != 1 {
		t.Fatalf("ROCs in the state: from A %d, to A %d; want 1 and 1", rocA, rocB)
	}
	checkNoKey(t, st, car.key)
	checkNoKey(t, st, lines[0].keys[SideA].Local)

	wire := st
	wire.SRTP = append(SRTPState(nil), st.SRTP...) // as a record carries it
	closed = true
	a1.Close()

	a2 := stateAnchor(t)
	t.Cleanup(func() { a2.Close() })
	if err := a2.Restore(wire); err != nil {
		t.Fatal(err)
	}
	// The PBX speaks first after the hand-over: the carrier decrypts with
	// the key and ROC it had.
	for range 10 {
		pbx.sendRaw(toB, pbx.packet(ssB, seq))
		car.expect(ssB, seq)
		car.sendRaw(toA, car.packet(ssA, seq))
		pbx.expect(ssA, seq)
		seq++
	}
	pbx.sendRaw(toB, rr(ssB))
	readRTCP() // a reused SRTCP index would be a replay at the carrier

	strm := a2.calls["hs"].streams[0]
	b := car.packet(ssA, seq)
	b[len(b)-20] ^= 1
	car.sendRaw(toA, b)
	pbx.nothing()
	plain := (&sphone{t: t}).packet(ssA, seq+1)
	car.sendRaw(toA, plain)
	pbx.nothing()
	if s := strm.Stats().A; s.SRTPAuthFailed != 2 {
		t.Fatalf("auth failures after restore %d, want 2 (tampered, plain)", s.SRTPAuthFailed)
	}
	// The restored call keeps its own key on a re-INVITE (no re-key).
	re := must(t)(a2.Offer(ref, SideA, mux(cryptoSDP(car.port(), "RTP/SAVP", car.key.value()))))
	_ = re
	ans2 := must(t)(a2.Answer(ref, SideB, mux(cryptoSDP(pbx.port(), "RTP/AVP"))))
	s1, _ := ParseSDP(answer)
	s2, _ := ParseSDP(ans2)
	if s1.Media[0].Crypto[0] != s2.Media[0].Crypto[0] {
		t.Fatal("the SBC's key changed on a re-INVITE after restore")
	}
	media, _ := a2.Media("hs")
	j, _ := json.Marshal(media)
	checkNoKeyText(t, "admin media JSON", string(j), car.key, lines[0].keys[SideA].Local)
}

// checkNoKey formats the state every way a log or an API could and
// looks for the key in it.
func checkNoKey(t *testing.T, st CallState, k CryptoAttr) {
	t.Helper()
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "state", st, "srtp", st.SRTP)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "state", st, "srtp", st.SRTP)
	j, _ := json.Marshal(st)
	text := fmt.Sprintf("%v %+v %#v %s %x %q", st, st, st, st.SRTP, st.SRTP, st.SRTP) + buf.String() + string(j)
	checkNoKeyText(t, "state", text, k)
}

func checkNoKeyText(t *testing.T, what, text string, keys ...CryptoAttr) {
	t.Helper()
	for _, k := range keys {
		ks := append(append([]byte(nil), k.Key...), k.Salt...)
		for _, f := range []string{
			base64.StdEncoding.EncodeToString(ks), hex.EncodeToString(k.Key), strings.ToUpper(hex.EncodeToString(k.Key)),
			string(k.Key), strings.Trim(fmt.Sprint(k.Key), "[]"),
		} {
			if strings.Contains(text, f) {
				t.Fatalf("%s carries a key: %s", what, text)
			}
		}
	}
}

// Decoding is bounded: every truncation and corruption of a valid state
// is an error or a state, never a panic; a wrong version is refused.
func TestSRTPStateDecodeBounded(t *testing.T) {
	k1, _ := newCrypto(1, "AEAD_AES_256_GCM")
	k2, _ := newCrypto(2, "AES_CM_128_HMAC_SHA1_32")
	k2.MKI = []byte{0, 1}
	k2.Lifetime = 1 << 31
	c := &anchored{sec: [][2]legSec{{{keys: &LegKeys{Local: k1, Remote: k2}}, {}}, {{}, {keys: &LegKeys{Local: k2, Remote: k1}}}}}
	b := c.srtpState()
	lines, err := decodeSRTPState(b)
	if err != nil || len(lines) != 2 || lines[1].keys[SideB] == nil {
		t.Fatalf("round trip: %v", err)
	}
	got := lines[0].keys[SideA]
	if !got.Local.sameKey(k1) || !got.Remote.sameKey(k2) || got.Remote.Tag != 2 || got.Remote.Lifetime != 1<<31 || got.Local.Profile != k1.Profile {
		t.Fatal("keys differ after the round trip")
	}
	for n := range len(b) {
		if _, err := decodeSRTPState(b[:n]); err == nil && n > 0 {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
	for i := range b {
		x := append(SRTPState(nil), b...)
		x[i] ^= 0xff
		_, _ = decodeSRTPState(x)
	}
	bad := append(SRTPState(nil), b...)
	bad[0] = 9
	if _, err := decodeSRTPState(bad); err == nil {
		t.Fatal("unknown version accepted")
	}
	if _, err := decodeSRTPState(append(b, 0)); err == nil {
		t.Fatal("trailing bytes accepted")
	}
	if s := fmt.Sprint(b); strings.Contains(s, base64.StdEncoding.EncodeToString(k1.Key)) || !strings.Contains(s, "not shown") {
		t.Fatalf("state formats as %s", s)
	}
}

func FuzzSRTPState(f *testing.F) {
	k, _ := newCrypto(1, "AES_CM_128_HMAC_SHA1_80")
	f.Add([]byte((&anchored{sec: [][2]legSec{{{keys: &LegKeys{Local: k, Remote: k}}, {}}}}).srtpState()))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeSRTPState(b)
	})
}
