package sbc_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"mime"
	"mime/multipart"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
)

// Bodies other than a lone SDP (bodies.go), on raw packets: SIP-I
// multipart, gzip, sipfrag-free types, and hostile shapes.

// insideSDP names an address that must never leave the carrier realm.
const insideSDP = "v=0\r\no=- 1 1 IN IP4 10.99.0.7\r\ns=-\r\nc=IN IP4 10.99.0.7\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"

// isupIAM is an ISUP IAM (ITU-T Q.763), binary with NULs and a CRLF in it.
var isupIAM = []byte("\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00\r\n\x03\x06\x0d\x03\x80\x90\xa2")

func sipI(boundary, sdp string, isup []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/sdp\r\n\r\n%s\r\n", boundary, sdp)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: application/isup; version=itu-t92+\r\nContent-Disposition: signal; handling=optional\r\n\r\n", boundary)
	b.Write(isup)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

func gz(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	return out.Bytes()
}

// parts reads a multipart body into type -> body.
func parts(t *testing.T, m sip.Message) map[string][]byte {
	t.Helper()
	ct := m.GetHeaders("Content-Type")
	if len(ct) != 1 {
		t.Fatalf("Content-Type: %v", ct)
	}
	mt, params, err := mime.ParseMediaType(ct[0].Value())
	out := map[string][]byte{}
	if err != nil || mt != "multipart/mixed" {
		out[mt] = m.Body()
		return out
	}
	r := multipart.NewReader(bytes.NewReader(m.Body()), params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err != nil {
			break
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(p)
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		out[pt] = b.Bytes()
		out[pt+" disposition"] = []byte(p.Header.Get("Content-Disposition"))
	}
	return out
}

func startBodiesSBC(t *testing.T, target, carrierBodies, entBodies string) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: %s}, bodies: %s}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: %s}, bodies: %s}
media: {timeout: 1m}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q], target_timeout: 400ms}
`, cp, mediaPorts(t, mediaChunk), carrierBodies, ep, mediaPorts(t, mediaChunk), entBodies, target)
	return runSBC(t, y, cp, ep)
}

func noLeak(t *testing.T, m sip.Message, what string) {
	t.Helper()
	if s := m.String(); strings.Contains(s, "10.99.0.7") || strings.Contains(s, "10.98.0.8") {
		t.Errorf("%s carries an inside address:\n%s", what, s)
	}
}

// TestSIPIMultipart: a SIP-I INVITE (SDP + ISUP) between realms that both
// pass ISUP reaches the callee as multipart with the SDP anchored and the
// ISUP intact; the callee's multipart 200 reaches the caller the same way.
// Into a realm that drops ISUP the INVITE leaves as a plain SDP; from a
// realm that refuses ISUP it is answered 415.
func TestSIPIMultipart(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startBodiesSBC(t, callee.Addr, "{isup: pass}", "{isup: pass}")

	caller.InviteTyped(s.carrier, "1000", "sipi-1", "", "multipart/mixed;boundary=unique-boundary-1", sipI("unique-boundary-1", insideSDP, isupIAM))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	noLeak(t, inv, "SIP-I INVITE to the PBX")
	p := parts(t, inv)
	s.anchoredFor(t, "enterprise", p["application/sdp"], "SIP-I INVITE's SDP")
	if !bytes.Equal(p["application/isup"], isupIAM) {
		t.Errorf("ISUP part %x, want %x", p["application/isup"], isupIAM)
	}
	if d := string(p["application/isup disposition"]); d != "signal; handling=optional" {
		t.Errorf("ISUP Content-Disposition %q", d)
	}
	if strings.Contains(string(inv.Body()), "unique-boundary-1") {
		t.Error("the caller's boundary crossed")
	}
	anm := []byte("\x09\x01\x00")
	callee.AnswerTyped(inv, 200, "OK", "sipi-callee", "", "multipart/mixed; boundary=\"b2\"",
		sipI("b2", strings.ReplaceAll(insideSDP, "10.99.0.7", "10.98.0.8"), anm))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	noLeak(t, ok, "SIP-I 200 to the carrier")
	p = parts(t, ok)
	s.anchoredFor(t, "carrier", p["application/sdp"], "SIP-I 200's SDP")
	if !bytes.Equal(p["application/isup"], anm) {
		t.Errorf("ANM part %x, want %x", p["application/isup"], anm)
	}
}

func TestSIPIDroppedOrRefused(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startBodiesSBC(t, callee.Addr, "{isup: pass}", "{isup: drop}")
	caller.InviteTyped(s.carrier, "1000", "sipi-drop", "", "multipart/mixed;boundary=xx", sipI("xx", insideSDP, isupIAM))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	noLeak(t, inv, "INVITE to a realm that drops ISUP")
	if ct := inv.GetHeaders("Content-Type"); len(ct) != 1 || ct[0].Value() != "application/sdp" {
		t.Fatalf("Content-Type %v, want application/sdp alone", ct)
	}
	s.anchoredFor(t, "enterprise", inv.Body(), "SDP left of the SIP-I INVITE")

	caller2, callee2 := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s2 := startBodiesSBC(t, callee2.Addr, "{isup: refuse}", "{isup: pass}")
	caller2.InviteTyped(s2.carrier, "1000", "sipi-refuse", "", "multipart/mixed;boundary=xx", sipI("xx", insideSDP, isupIAM))
	res := finalOf(t, caller2, "sipi-refuse")
	if res.StatusCode != 415 {
		t.Fatalf("ISUP from a refusing realm: %d, want 415", res.StatusCode)
	}
	noINVITE(t, callee2)
}

func finalOf(t *testing.T, p *testphone.Phone, callID string) *sip.Response {
	t.Helper()
	m := p.Next(wait, func(m sip.Message) bool { return isInviteFinal(m) && m.CallID().Value() == callID })
	if m == nil {
		t.Fatalf("%s: no final answer", callID)
	}
	return m.(*sip.Response)
}

func noINVITE(t *testing.T, callee *testphone.Phone) {
	t.Helper()
	callee.Quiet(200*time.Millisecond, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE
	}, "INVITE of a refused body")
}

// TestBodyRefusals: bodies the SBC will not carry get a clear SIP error
// and never reach the callee; a type the realm allows passes as it came;
// a gzip SDP is decoded and anchored.
func TestBodyRefusals(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startBodiesSBC(t, callee.Addr, "{isup: pass, allow: [application/vnd.example+xml]}", "{isup: pass}")
	bomb := gz(t, make([]byte, 1<<20)) // 1 MiB of zeros in ~1 KB
	nested := []byte("--o\r\nContent-Type: multipart/mixed;boundary=i\r\n\r\n--i\r\nContent-Type: application/sdp\r\n\r\n" + insideSDP + "\r\n--i--\r\n\r\n--o--\r\n")
	var many bytes.Buffer
	for range 9 {
		fmt.Fprintf(&many, "--m\r\nContent-Type: application/isup\r\n\r\nx\r\n")
	}
	many.WriteString("--m--\r\n")
	for i, tc := range []struct {
		name, extra, ctype string
		body               []byte
		code               int
		header, want       string
	}{
		{"text/plain", "", "text/plain", []byte("hello"), 415, "Accept", "application/sdp"},
		{"no boundary", "", "multipart/mixed", sipI("b", insideSDP, isupIAM), 400, "", ""},
		{"nested multipart", "", "multipart/mixed;boundary=o", nested, 415, "Accept", "multipart/mixed"},
		{"unterminated multipart", "", "multipart/mixed;boundary=b", []byte("--b\r\nContent-Type: application/sdp\r\n\r\n" + insideSDP), 400, "", ""},
		{"too many parts", "", "multipart/mixed;boundary=m", many.Bytes(), 400, "", ""},
		{"two SDPs", "", "multipart/mixed;boundary=b", []byte("--b\r\nContent-Type: application/sdp\r\n\r\n" + insideSDP + "\r\n--b\r\nContent-Type: application/sdp\r\n\r\n" + insideSDP + "\r\n--b--\r\n"), 400, "", ""},
		{"gzip bomb", "Content-Encoding: gzip", "application/sdp", bomb, 413, "", ""},
		{"broken gzip", "Content-Encoding: gzip", "application/sdp", []byte("\x1f\x8b\x08\x00garbage"), 400, "", ""},
		{"deflate", "Content-Encoding: deflate", "application/sdp", []byte("x"), 415, "Accept-Encoding", "gzip"},
		{"bad Content-Type", "", "application/", []byte("x"), 400, "", ""},
	} {
		id := fmt.Sprintf("refuse-%d", i)
		caller.InviteTyped(s.carrier, "1000", id, tc.extra, tc.ctype, tc.body)
		res := finalOf(t, caller, id)
		ackFailure(caller, s.carrier, res, id+"-inv")
		if res.StatusCode != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, res.StatusCode, res.Reason, tc.code)
			continue
		}
		if tc.header != "" {
			if h := res.GetHeaders(tc.header); len(h) != 1 || !strings.Contains(h[0].Value(), tc.want) {
				t.Errorf("%s: %s %v, want one with %s", tc.name, tc.header, h, tc.want)
			}
		}
	}
	noINVITE(t, callee)

	xml := []byte("<x>10.0.0.1</x>")
	caller.InviteTyped(s.carrier, "1000", "allowed", "", "application/vnd.example+xml", xml)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	if ct := inv.GetHeaders("Content-Type"); len(ct) != 1 || ct[0].Value() != "application/vnd.example+xml" || !bytes.Equal(inv.Body(), xml) {
		t.Errorf("allowed type: %v %q", ct, inv.Body())
	}
	callee.Answer(inv, 486, "Busy", "b1", "")
	ackFailure(caller, s.carrier, finalOf(t, caller, "allowed"), "allowed-inv")

	caller.InviteTyped(s.carrier, "1000", "badparam", "", "application/sdp; charset", []byte(insideSDP))
	inv = callee.ExpectRequest(sip.INVITE, wait)
	noLeak(t, inv, "INVITE with a broken Content-Type parameter")
	s.anchoredFor(t, "enterprise", inv.Body(), "SDP with a broken Content-Type parameter")
	callee.Answer(inv, 486, "Busy", "b3", "")
	ackFailure(caller, s.carrier, finalOf(t, caller, "badparam"), "badparam-inv")

	caller.InviteTyped(s.carrier, "1000", "gzip", "Content-Encoding: gzip", "application/sdp", gz(t, []byte(insideSDP)))
	inv = callee.ExpectRequest(sip.INVITE, wait)
	noLeak(t, inv, "gzip INVITE")
	if len(inv.GetHeaders("Content-Encoding")) != 0 {
		t.Errorf("Content-Encoding crossed with a decoded body")
	}
	s.anchoredFor(t, "enterprise", inv.Body(), "gzip INVITE's SDP")
	callee.Answer(inv, 486, "Busy", "b2", "")
	ackFailure(caller, s.carrier, finalOf(t, caller, "gzip"), "gzip-inv")
}

// TestInDialogBodies: a SIP-I re-INVITE has its SDP part anchored both
// ways (offer and answer); a NOTIFY's sipfrag keeps only its status line;
// an INFO's application/dtmf-relay passes as it is; a gzip re-INVITE is
// decoded and anchored.
func TestInDialogBodies(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startBodiesSBC(t, callee.Addr, "{isup: pass}", "{isup: pass}")
	dA, _, _ := established(t, s, caller, callee, "indlg")

	caller.RequestTyped(dA, "INVITE", 2, "re-sipi", "", "multipart/mixed;boundary=r1", sipI("r1", insideSDP, isupIAM))
	re := callee.ExpectRequest(sip.INVITE, wait)
	noLeak(t, re, "SIP-I re-INVITE")
	p := parts(t, re)
	s.anchoredFor(t, "enterprise", p["application/sdp"], "SIP-I re-INVITE's SDP")
	if !bytes.Equal(p["application/isup"], isupIAM) {
		t.Errorf("re-INVITE's ISUP %x", p["application/isup"])
	}
	callee.AnswerTyped(re, 200, "OK", "", "", "multipart/mixed;boundary=r2", sipI("r2", strings.ReplaceAll(insideSDP, "10.99.0.7", "10.98.0.8"), []byte("\x09")))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	noLeak(t, ok, "SIP-I re-INVITE's 200")
	s.anchoredFor(t, "carrier", parts(t, ok)["application/sdp"], "SIP-I re-INVITE 200's SDP")
	caller.Ack(dA, 2, "re-sipi-ack")
	callee.ExpectRequest(sip.ACK, wait)

	frag := []byte("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.99.0.7;branch=z9hG4bK-x\r\nContact: <sip:pbx@10.99.0.7>\r\n")
	caller.RequestTyped(dA, "NOTIFY", 3, "notify", "Event: refer\nSubscription-State: active", "message/sipfrag;version=2.0", frag)
	n := callee.ExpectRequest(sip.NOTIFY, wait)
	noLeak(t, n, "NOTIFY")
	if string(n.Body()) != "SIP/2.0 180 Ringing\r\n" {
		t.Errorf("sipfrag %q, want the status line alone", n.Body())
	}
	callee.Answer(n, 200, "OK", "", "")
	caller.ExpectResponse(200, "NOTIFY", wait)

	dtmf := []byte("Signal=5\r\nDuration=160\r\n")
	caller.RequestTyped(dA, "INFO", 4, "info", "", "application/dtmf-relay", dtmf)
	info := callee.ExpectRequest(sip.INFO, wait)
	if ct := info.GetHeaders("Content-Type"); len(ct) != 1 || ct[0].Value() != "application/dtmf-relay" || !bytes.Equal(info.Body(), dtmf) {
		t.Errorf("INFO: %v %q", ct, info.Body())
	}
	callee.Answer(info, 200, "OK", "", "")
	caller.ExpectResponse(200, sip.INFO, wait)

	caller.RequestTyped(dA, "INVITE", 5, "re-gzip", "Content-Encoding: gzip", "application/sdp", gz(t, []byte(insideSDP)))
	re = callee.ExpectRequest(sip.INVITE, wait)
	noLeak(t, re, "gzip re-INVITE")
	if len(re.GetHeaders("Content-Encoding")) != 0 {
		t.Error("Content-Encoding crossed with a decoded body")
	}
	s.anchoredFor(t, "enterprise", re.Body(), "gzip re-INVITE's SDP")
	callee.Answer(re, 200, "OK", "", testphone.TestSDP)
	caller.ExpectResponse(200, sip.INVITE, wait)
	caller.Ack(dA, 5, "re-gzip-ack")
	callee.ExpectRequest(sip.ACK, wait)
}
