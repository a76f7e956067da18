package sbc_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/sbc"
)

// unit is one Session-Expires second in these tests (sbc.SetSessionSecond):
// 90 s lasts 1.8 s, a refresh at half of it comes after 0.9 s, and a peer
// that does not refresh is hung up on 60 s (1.2 s) after its last refresh.
const unit = 20 * time.Millisecond

// timerSBC runs an SBC whose realms have the given session_timer blocks.
func timerSBC(t *testing.T, callee string, carrierST, enterpriseST string) *testSBC {
	t.Helper()
	t.Cleanup(sbc.SetSessionSecond(unit))
	cp, ep := freePort(t), freePort(t)
	return runSBC(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", session_timer: %s}
  - {name: enterprise, listen: "127.0.0.1:%d", session_timer: %s}
media: {enabled: false}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"], target_timeout: 400ms}
`, cp, carrierST, ep, enterpriseST, callee), cp, ep)
}

// stInvite sends an INVITE with CSeq cseq and extra header lines.
func stInvite(p *testphone.Phone, to, callID string, cseq int, extra string) {
	p.Send(to, fmt.Sprintf(`INVITE sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d;rport
		Max-Forwards: 70
		From: <sip:alice@%s>;tag=ft%s
		To: <sip:1000@%s>
		Call-ID: %s
		CSeq: %d INVITE
		Contact: <sip:alice@%s>
		%s`, to, p.Addr, callID, cseq, p.Addr, callID, to, callID, cseq, p.Addr, extra), testphone.TestSDP)
}

// stRequest sends an in-dialog request with extra header lines.
func stRequest(p *testphone.Phone, d testphone.Dialog, method string, cseq int, extra, body string) {
	p.Send(d.SBC, fmt.Sprintf(`%s %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: %d %s
		Contact: <sip:x@%s>
		%s`, method, d.Target, p.Addr, method, cseq, d.LocalURI, d.LocalTag,
		d.RemoteURI, d.RemoteTag, d.CallID, cseq, method, p.Addr, extra), body)
}

func headerValues(m sip.Message, name string) string {
	var v []string
	for _, h := range m.GetHeaders(name) {
		v = append(v, h.Value())
	}
	return strings.Join(v, ", ")
}

func stEvents(s *testSBC, realm, event string) float64 {
	return testutil.ToFloat64(s.Metrics().SessionTimers.WithLabelValues(realm, event))
}

// The caller asks to refresh (refresher=uac), refreshes once with an
// UPDATE that the SBC answers itself, then goes silent: the SBC ends both
// legs with BYE and a Q.850 Reason before the session would expire.
func TestSessionTimerCallerStopsRefreshing(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := timerSBC(t, callee.Addr, "{}", "{expires: 0s}")

	stInvite(caller, s.carrier, "st-silent", 1, "Supported: timer\nSession-Expires: 90;refresher=uac\nMin-SE: 90")
	inv := callee.ExpectRequest(sip.INVITE, wait)
	if se := headerValues(inv, "Session-Expires"); se != "" {
		t.Errorf("leg A's Session-Expires crossed to leg B (no default there): %q", se)
	}
	if !strings.Contains(headerValues(inv, "Supported"), "timer") || headerValues(inv, "Min-SE") != "90" {
		t.Errorf("leg B INVITE: Supported %q Min-SE %q, want timer and 90", headerValues(inv, "Supported"), headerValues(inv, "Min-SE"))
	}
	respondWith(callee, inv, 200, "OK", "callee1", "", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	if se := headerValues(ok, "Session-Expires"); se != "90;refresher=uac" {
		t.Errorf("2xx Session-Expires %q, want 90;refresher=uac", se)
	}
	if !strings.Contains(headerValues(ok, "Require"), "timer") {
		t.Errorf("2xx Require %q: a uac refresher needs Require: timer (RFC 4028 9)", headerValues(ok, "Require"))
	}
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "st-silent-ack")
	callee.ExpectRequest(sip.ACK, wait)
	s.waitState(t, "confirmed")

	time.Sleep(30 * unit)
	stRequest(caller, dA, "UPDATE", 2, "Supported: timer\nSession-Expires: 90;refresher=uac", "")
	up := caller.ExpectResponse(200, sip.UPDATE, wait)
	refreshed := time.Now()
	if se := headerValues(up, "Session-Expires"); se != "90;refresher=uac" {
		t.Errorf("UPDATE 200 Session-Expires %q", se)
	}
	isUpdate := func(m sip.Message) bool { r, ok := m.(*sip.Request); return ok && r.Method == sip.UPDATE }
	callee.Quiet(10*unit, isUpdate, "UPDATE relayed (a refresh without SDP is answered by the SBC)")

	byeA := caller.ExpectRequest(sip.BYE, 90*unit)
	took := time.Since(refreshed)
	byeB := callee.ExpectRequest(sip.BYE, wait)
	if took < 55*unit || took >= 90*unit {
		t.Errorf("BYE %v after the refresh, want 60 s (%v) of 90 s, before expiry", took, 60*unit)
	}
	for _, bye := range []*sip.Request{byeA, byeB} {
		if r := headerValues(bye, "Reason"); !strings.Contains(r, "Q.850;cause=102") {
			t.Errorf("BYE Reason %q, want Q.850 cause 102", r)
		}
	}
	caller.Answer(byeA, 200, "OK", "", "")
	callee.Answer(byeB, 200, "OK", "", "")
	s.waitIdle(t)
	if got := s.calls("session_expired"); got != 1 {
		t.Errorf("session_expired calls %v, want 1", got)
	}
	if got := stEvents(s, "carrier", "expired"); got != 1 {
		t.Errorf("expired events %v, want 1", got)
	}
}

// Where the SBC refreshes: leg A, whose caller names no UPDATE in Allow
// and asks for no timer, gets re-INVITEs carrying the SBC's last SDP for
// it unchanged; leg B, whose callee allows UPDATE and makes the SBC the
// refresher, gets UPDATEs without SDP. Neither crosses, and a call that
// ended refreshes nothing more.
func TestSessionTimerSBCRefreshes(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := timerSBC(t, callee.Addr, "{expires: 90s}", "{expires: 120s}")

	stInvite(caller, s.carrier, "st-refresh", 1, "")
	inv := callee.ExpectRequest(sip.INVITE, wait)
	if se := headerValues(inv, "Session-Expires"); se != "120" {
		t.Errorf("leg B INVITE Session-Expires %q, want the realm's 120", se)
	}
	respondWith(callee, inv, 200, "OK", "callee1", "Session-Expires: 120;refresher=uac\nRequire: timer\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE\n", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	if se := headerValues(ok, "Session-Expires"); se != "90;refresher=uas" {
		t.Errorf("2xx Session-Expires %q, want 90;refresher=uas (the caller supports no timer)", se)
	}
	if strings.Contains(headerValues(ok, "Require"), "timer") {
		t.Errorf("2xx Require %q toward a caller without timer support", headerValues(ok, "Require"))
	}
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "st-refresh-ack")
	callee.ExpectRequest(sip.ACK, wait)
	s.waitState(t, "confirmed")
	start := time.Now()

	reinv := caller.ExpectRequest(sip.INVITE, 60*unit)
	if took := time.Since(start); took < 40*unit {
		t.Errorf("leg A refreshed after %v, want half of 90 s (%v)", took, 45*unit)
	}
	if string(reinv.Body()) != string(ok.Body()) {
		t.Errorf("refresh re-INVITE SDP is not the SBC's last one for leg A:\n%s\nwant\n%s", reinv.Body(), ok.Body())
	}
	if se := headerValues(reinv, "Session-Expires"); se != "90;refresher=uac" {
		t.Errorf("refresh Session-Expires %q, want 90;refresher=uac", se)
	}
	respondWith(caller, reinv, 200, "OK", "", "", testphone.TestSDP)
	if ack := caller.ExpectRequest(sip.ACK, wait); ack.CSeq().SeqNo != reinv.CSeq().SeqNo {
		t.Errorf("ACK CSeq %d for re-INVITE %d", ack.CSeq().SeqNo, reinv.CSeq().SeqNo)
	}

	up := callee.ExpectRequest(sip.UPDATE, 60*unit)
	if len(up.Body()) != 0 {
		t.Errorf("leg B refresh UPDATE carries a body:\n%s", up.Body())
	}
	if se := headerValues(up, "Session-Expires"); se != "120;refresher=uac" {
		t.Errorf("leg B refresh Session-Expires %q, want 120;refresher=uac", se)
	}
	respondWith(callee, up, 200, "OK", "", "Session-Expires: 120;refresher=uac\nRequire: timer\n", "")
	isReq := func(m sip.Message) bool { _, ok := m.(*sip.Request); return ok }
	caller.Quiet(5*unit, func(m sip.Message) bool { r, ok := m.(*sip.Request); return ok && r.Method == sip.UPDATE }, "leg B's refresh on leg A")

	// A second round on each leg: the timers restarted.
	reinv2 := caller.ExpectRequest(sip.INVITE, 60*unit)
	if string(reinv2.Body()) != string(ok.Body()) {
		t.Errorf("second refresh changed leg A's SDP")
	}
	respondWith(caller, reinv2, 200, "OK", "", "", testphone.TestSDP)
	caller.ExpectRequest(sip.ACK, wait)

	caller.Request(dA, "BYE", 3, "st-refresh-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	callee.Quiet(80*unit, isReq, "a refresh after the call ended")
	if got := stEvents(s, "carrier", "refresh_sent"); got != 2 {
		t.Errorf("leg A refreshes sent %v, want 2", got)
	}
}

// A refresh that finds the dialog gone (481) ends the call on both legs.
func TestSessionTimerRefreshFails(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := timerSBC(t, callee.Addr, "{expires: 90s}", "{expires: 0s}")
	stInvite(caller, s.carrier, "st-481", 1, "Allow: INVITE, ACK, BYE, UPDATE")
	inv := callee.ExpectRequest(sip.INVITE, wait)
	respondWith(callee, inv, 200, "OK", "callee1", "", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	caller.Ack(testphone.CallerDialog(ok, s.carrier), 1, "st-481-ack")
	callee.ExpectRequest(sip.ACK, wait)
	up := caller.ExpectRequest(sip.UPDATE, 60*unit)
	respondWith(caller, up, 481, "Call/Transaction Does Not Exist", "", "", "")
	bye := callee.ExpectRequest(sip.BYE, wait)
	if r := headerValues(bye, "Reason"); !strings.Contains(r, "Q.850") {
		t.Errorf("BYE Reason %q", r)
	}
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	if got := s.calls("session_refresh_failed"); got != 1 {
		t.Errorf("session_refresh_failed calls %v, want 1", got)
	}
}

// Session-Expires below Min-SE gets 422 with Min-SE (RFC 4028 8.1, and the
// caller's retry with CSeq + 1 is a new call); a callee's 422 makes the
// SBC retry leg B with the interval it asks for, on the same Call-ID and
// From tag with CSeq + 1.
func TestSessionTimer422(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := timerSBC(t, callee.Addr, "{min_se: 120s}", "{expires: 90s}")

	stInvite(caller, s.carrier, "st-422", 1, "Supported: timer\nSession-Expires: 90")
	res := caller.ExpectResponse(422, sip.INVITE, wait)
	if got := headerValues(res, "Min-SE"); got != "120" {
		t.Errorf("422 Min-SE %q, want 120", got)
	}
	caller.Ack(testphone.Dialog{CallID: "st-422", LocalURI: "sip:alice@" + caller.Addr, LocalTag: "ftst-422",
		RemoteURI: "sip:1000@" + s.carrier, RemoteTag: toTagOf2(res), Target: "sip:1000@" + s.carrier, SBC: s.carrier}, 1, "st-422-1")
	callee.Quiet(5*unit, func(m sip.Message) bool { _, ok := m.(*sip.Request); return ok }, "INVITE past a 422")

	stInvite(caller, s.carrier, "st-422", 2, "Supported: timer\nSession-Expires: 120\nMin-SE: 120")
	inv := callee.ExpectRequest(sip.INVITE, wait)
	respondWith(callee, inv, 422, "Session Interval Too Small", "c422", "Min-SE: 300\n", "")
	callee.ExpectRequest(sip.ACK, wait)
	inv2 := callee.ExpectRequest(sip.INVITE, wait)
	if inv2.CallID().Value() != inv.CallID().Value() || testphone.FromTag(inv2.From()) != testphone.FromTag(inv.From()) || inv2.CSeq().SeqNo != inv.CSeq().SeqNo+1 {
		t.Errorf("retry after 422: Call-ID %s From tag %s CSeq %d; want %s %s %d", inv2.CallID().Value(), testphone.FromTag(inv2.From()), inv2.CSeq().SeqNo,
			inv.CallID().Value(), testphone.FromTag(inv.From()), inv.CSeq().SeqNo+1)
	}
	if se, ms := headerValues(inv2, "Session-Expires"), headerValues(inv2, "Min-SE"); se != "300" || ms != "300" {
		t.Errorf("retry Session-Expires %q Min-SE %q, want 300 and 300", se, ms)
	}
	respondWith(callee, inv2, 200, "OK", "callee1", "Session-Expires: 300;refresher=uas\n", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	if se := headerValues(ok, "Session-Expires"); se != "120;refresher=uac" {
		t.Errorf("leg A 2xx Session-Expires %q, want its own 120;refresher=uac", se)
	}
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 2, "st-422-ack")
	callee.ExpectRequest(sip.ACK, wait)
	s.waitState(t, "confirmed")
	caller.Request(dA, "BYE", 3, "st-422-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
	if got := stEvents(s, "carrier", "too_small"); got != 1 {
		t.Errorf("too_small %v, want 1", got)
	}
	if got := stEvents(s, "enterprise", "retry_422"); got != 1 {
		t.Errorf("retry_422 %v, want 1", got)
	}
}

// Malformed Session-Expires or Min-SE get 400, in a new call and in a
// dialog, are counted, and leave no call behind or the live one hurt.
func TestSessionTimerMalformed(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := timerSBC(t, callee.Addr, "{}", "{}")
	bad := []string{
		"Session-Expires: abc",
		"Session-Expires: 1800;refresher=both",
		"Session-Expires: -1800",
		"Session-Expires: 99999999999",
		"Session-Expires: 1800\nSession-Expires: 900",
		"x: 12a",
		"Min-SE: 9x",
		"Session-Expires: 1800\nMin-SE: 90\nMin-SE: 120",
	}
	for i, h := range bad {
		cid := fmt.Sprintf("st-bad-%d", i)
		stInvite(caller, s.carrier, cid, 1, h)
		res := caller.ExpectResponse(400, sip.INVITE, wait)
		if res.CallID().Value() != cid {
			t.Errorf("%q: 400 for %s", h, res.CallID().Value())
		}
	}
	callee.Quiet(5*unit, func(m sip.Message) bool { _, ok := m.(*sip.Request); return ok }, "a malformed INVITE relayed")
	if got := stEvents(s, "carrier", "malformed"); got != float64(len(bad)) {
		t.Errorf("malformed %v, want %d", got, len(bad))
	}
	if n := s.ActiveCalls(); n != 0 {
		t.Errorf("%d calls after malformed INVITEs", n)
	}

	dA, dB, _ := established(t, s, caller, callee, "st-bad-live")
	stRequest(caller, dA, "UPDATE", 2, "Session-Expires: soon", "")
	caller.ExpectResponse(400, sip.UPDATE, wait)
	stRequest(caller, dA, "INVITE", 3, "Min-SE: ;", testphone.TestSDP)
	caller.ExpectResponse(400, sip.INVITE, wait)
	if s.State(t) != "confirmed" {
		t.Error("call hurt by a malformed refresh")
	}
	callee.Request(dB, "BYE", 5, "st-bad-bye", "")
	callee.ExpectResponse(200, sip.BYE, wait)
	bye := caller.ExpectRequest(sip.BYE, wait)
	caller.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
}

// State is the only call's state.
func (s *testSBC) State(t *testing.T) string {
	t.Helper()
	calls := s.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	return calls[0].State
}
