package sbc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgesbc/edgesbc/cdr"
	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/testcarrier"
	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/sbc"
)

// records collects the call records an SBC hands over.
type records struct{ ch chan cdr.Record }

func (r *records) Record(rec cdr.Record) { r.ch <- rec }

func (r *records) next(t *testing.T) cdr.Record {
	t.Helper()
	select {
	case rec := <-r.ch:
		return rec
	case <-time.After(wait):
		t.Fatal("no call record")
		return cdr.Record{}
	}
}

// statsMedia passes SDP through, reports media for each call until End
// (so a record read after End has none), and lets the test fire a media
// timeout.
type statsMedia struct {
	sbc.PassThroughMedia
	mu      sync.Mutex
	live    map[string]bool
	timeout func(string)
}

func (m *statsMedia) Offer(ref mediarelay.CallRef, from sbc.Side, sdp []byte) ([]byte, error) {
	m.mu.Lock()
	m.live[ref.ID] = true
	m.mu.Unlock()
	return sdp, nil
}

func (m *statsMedia) End(id string) {
	m.mu.Lock()
	delete(m.live, id)
	m.mu.Unlock()
}

func (m *statsMedia) OnTimeout(f func(string)) { m.timeout = f }

func (m *statsMedia) Media(id string) (mediarelay.CallMedia, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.live[id] {
		return mediarelay.CallMedia{}, false
	}
	return mediarelay.CallMedia{MOS: 4.1, Streams: []mediarelay.StreamInfo{{
		Index: 0, Codec: "pcmu", Path: "xdp", SRTPA: "AES_CM_128_HMAC_SHA1_80",
		FromA: mediarelay.DirInfo{Packets: 500, Lost: 5, JitterMs: 3},
		FromB: mediarelay.DirInfo{Packets: 498, JitterMs: 1},
	}}}, true
}

// startRecordingSBC is startSBC with a recorder and the stats media hook.
func startRecordingSBC(t *testing.T, targets ...string) (*testSBC, *records, *statsMedia) {
	t.Helper()
	ts := ""
	for i, tg := range targets {
		if i > 0 {
			ts += ","
		}
		ts += `"` + tg + `"`
	}
	return startRecordingSBCTail(t, fmt.Sprintf(`
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%s], target_timeout: 400ms}
`, ts))
}

// startRecordingSBCTail runs a recording SBC with two loopback realms and
// tail (routes, trunks) appended to its config.
func startRecordingSBCTail(t *testing.T, tail string) (*testSBC, *records, *statsMedia) {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	cfg, err := config.Parse(fmt.Appendf(nil, `
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false}
%s`, cp, ep, tail))
	if err != nil {
		t.Fatal(err)
	}
	rec := &records{ch: make(chan cdr.Record, 16)}
	media := &statsMedia{live: map[string]bool{}}
	s, err := sbc.New(cfg, sbc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Recorder: rec, Media: media})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return &testSBC{SBC: s, carrier: fmt.Sprintf("127.0.0.1:%d", cp), enterprise: fmt.Sprintf("127.0.0.1:%d", ep)}, rec, media
}

// checkRecord compares the fields every case sets.
func checkRecord(t *testing.T, r cdr.Record, status, endedBy, result string, sipCode, q850 int, answered bool) {
	t.Helper()
	if r.Status != status || r.EndedBy != endedBy || r.Result != result || r.SIPCode != sipCode || r.Q850 != q850 {
		t.Errorf("record status %q ended_by %q result %q sip %d q850 %d; want %q %q %q %d %d",
			r.Status, r.EndedBy, r.Result, r.SIPCode, r.Q850, status, endedBy, result, sipCode, q850)
	}
	if r.Start.IsZero() || r.End.Before(r.Start) || r.Start.Location() != time.UTC || r.End.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("times start %v end %v: want UTC milliseconds, end after start", r.Start, r.End)
	}
	if answered != !r.Answer.IsZero() {
		t.Errorf("answer time %v, answered %v", r.Answer, answered)
	}
	if answered && (r.DurationMs != r.End.Sub(r.Answer).Milliseconds() || r.Answer.Before(r.Start)) {
		t.Errorf("duration %d ms for answer %v end %v", r.DurationMs, r.Answer, r.End)
	}
	if !answered && r.DurationMs != 0 {
		t.Errorf("unanswered call with duration %d", r.DurationMs)
	}
	if r.RealmIn != "carrier" || r.RealmOut != "enterprise" || r.Route != "in" || r.Caller.Received != "alice" || r.Callee.Received != "1000" {
		t.Errorf("record realms %s->%s route %q caller %+v callee %+v", r.RealmIn, r.RealmOut, r.Route, r.Caller, r.Callee)
	}
	if r.A.CallID == "" || r.A.Peer == "" {
		t.Errorf("leg A %+v", r.A)
	}
}

func TestCDRAnsweredEndedByCaller(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s, recs, _ := startRecordingSBC(t, callee.Addr)
	dA, _, inv := established(t, s, caller, callee, "cdr-answered")
	time.Sleep(50 * time.Millisecond)
	caller.Request(dA, "BYE", 2, "cdr-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	r := recs.next(t)
	checkRecord(t, r, cdr.StatusAnswered, cdr.EndedByCaller, "bye_a", 200, 16, true)
	if r.DurationMs < 50 {
		t.Errorf("duration %d ms, the call talked at least 50", r.DurationMs)
	}
	if r.A.CallID != "cdr-answered" || r.A.Peer != caller.Addr {
		t.Errorf("leg A %+v, want the caller's Call-ID and address", r.A)
	}
	if r.B == nil || r.B.CallID != inv.CallID().Value() || r.B.Peer != callee.Addr+";transport=udp" || r.Attempts != 1 {
		t.Errorf("leg B %+v attempts %d, want the callee's dialog", r.B, r.Attempts)
	}
	if r.Caller.Sent != inv.From().Address.User || r.Callee.Sent != inv.Recipient.User {
		t.Errorf("numbers sent %+v %+v, leg B's INVITE has %s -> %s", r.Caller, r.Callee, inv.From().Address.User, inv.Recipient.User)
	}
	// Media read before the call's media was released.
	if len(r.Media) != 1 {
		t.Fatalf("media %+v: read after the media was released?", r.Media)
	}
	m := r.Media[0]
	if m.Codec != "pcmu" || m.Path != "xdp" || m.SRTPA != "AES_CM_128_HMAC_SHA1_80" || m.FromA.Packets != 500 || m.FromA.Lost != 5 ||
		m.FromB.JitterMs != 1 || m.MOS <= 1 || m.MOS >= 4.5 {
		t.Errorf("media stream %+v", m)
	}
}

func TestCDREndedByFarSide(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s, recs, _ := startRecordingSBC(t, callee.Addr)
	_, dB, _ := established(t, s, caller, callee, "cdr-far")
	callee.Send(dB.SBC, fmt.Sprintf(`BYE %s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-cdr-far-bye
		Max-Forwards: 70
		From: <%s>;tag=%s
		To: <%s>;tag=%s
		Call-ID: %s
		CSeq: 9 BYE
		Reason: Q.850;cause=31;text="Normal, unspecified"`, dB.Target, callee.Addr, dB.LocalURI, dB.LocalTag,
		dB.RemoteURI, dB.RemoteTag, dB.CallID), "")
	callee.ExpectResponse(200, sip.BYE, wait)
	bye := caller.ExpectRequest(sip.BYE, wait)
	caller.Answer(bye, 200, "OK", "", "")
	r := recs.next(t)
	checkRecord(t, r, cdr.StatusAnswered, cdr.EndedByCallee, "bye_b", 200, 31, true)
}

func TestCDRBusy(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s, recs, _ := startRecordingSBC(t, callee.Addr)
	caller.Invite(s.carrier, "1000", "cdr-busy", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 486, "Busy Here", "cb", "")
	callee.ExpectRequest(sip.ACK, wait)
	caller.ExpectResponse(486, sip.INVITE, wait)
	r := recs.next(t)
	checkRecord(t, r, cdr.StatusBusy, cdr.EndedByCallee, "busy", 486, 0, false)
	if r.SIPReason != "Busy Here" || r.B == nil || r.Attempts != 1 {
		t.Errorf("reason %q leg B %+v attempts %d", r.SIPReason, r.B, r.Attempts)
	}
}

func TestCDRCancelled(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s, recs, _ := startRecordingSBC(t, callee.Addr)
	caller.Invite(s.carrier, "1000", "cdr-cancel", testphone.TestSDP)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 180, "Ringing", "cb", "")
	caller.ExpectResponse(180, sip.INVITE, wait)
	caller.Send(s.carrier, fmt.Sprintf(`CANCEL sip:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-cdr-cancel-inv;rport
		Max-Forwards: 70
		From: "Caller" <sip:alice@%s>;tag=ftcdr-cancel
		To: <sip:1000@%s>
		Call-ID: cdr-cancel
		CSeq: 1 CANCEL`, s.carrier, caller.Addr, caller.Addr, s.carrier), "")
	caller.ExpectResponse(487, sip.INVITE, wait)
	cancel := callee.ExpectRequest(sip.CANCEL, wait)
	callee.Answer(cancel, 200, "OK", "", "")
	callee.Answer(inv, 487, "Request Terminated", "cb", "")
	callee.ExpectRequest(sip.ACK, wait)
	r := recs.next(t)
	checkRecord(t, r, cdr.StatusCancelled, cdr.EndedByCaller, "cancelled", 487, 0, false)
}

// The first target fails (503), the second answers: one record, two
// attempts, leg B the second target's.
func TestCDRFailover(t *testing.T) {
	caller, bad, good := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	s, recs, _ := startRecordingSBC(t, bad.Addr, good.Addr)
	caller.Invite(s.carrier, "1000", "cdr-failover", testphone.TestSDP)
	inv1 := bad.ExpectRequest(sip.INVITE, wait)
	bad.Answer(inv1, 503, "Service Unavailable", "b1", "")
	bad.ExpectRequest(sip.ACK, wait)
	inv2 := good.ExpectRequest(sip.INVITE, wait)
	good.Answer(inv2, 200, "OK", "g1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.carrier)
	caller.Ack(dA, 1, "cdr-failover-ack")
	good.ExpectRequest(sip.ACK, wait)
	s.waitState(t, "confirmed")
	caller.Request(dA, "BYE", 2, "cdr-failover-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := good.ExpectRequest(sip.BYE, wait)
	good.Answer(bye, 200, "OK", "", "")
	r := recs.next(t)
	checkRecord(t, r, cdr.StatusAnswered, cdr.EndedByCaller, "bye_a", 200, 16, true)
	if r.Attempts != 2 || r.B == nil || r.B.Peer != good.Addr+";transport=udp" || r.B.CallID != inv2.CallID().Value() {
		t.Errorf("attempts %d leg B %+v, want 2 and the second target", r.Attempts, r.B)
	}
	select {
	case extra := <-recs.ch:
		t.Errorf("a second record for one call: %+v", extra)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestCDRMediaTimeout(t *testing.T) {
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	s, recs, media := startRecordingSBC(t, callee.Addr)
	established(t, s, caller, callee, "cdr-media-timeout")
	media.timeout(s.Calls()[0].ID)
	for _, p := range []*testphone.Phone{caller, callee} {
		bye := p.ExpectRequest(sip.BYE, wait)
		if rs := bye.GetHeader("Reason"); rs == nil || !strings.Contains(rs.Value(), "cause=102") {
			t.Errorf("BYE Reason %v", rs)
		}
		p.Answer(bye, 200, "OK", "", "")
	}
	r := recs.next(t)
	checkRecord(t, r, cdr.StatusAnswered, cdr.EndedBySBC, "media_timeout", 200, 102, true)
	if len(r.Media) != 1 || r.Media[0].FromA.Packets != 500 {
		t.Errorf("media %+v", r.Media)
	}
}

func TestQ850CauseParse(t *testing.T) {
	for in, want := range map[string]int{
		`Q.850;cause=16;text="Normal"`:      16,
		`SIP;cause=200, Q.850 ; cause = 17`: 17,
		`SIP;cause=486`:                     0,
		`Q.850;cause=999`:                   0,
		``:                                  0,
		`q.850;text="x";CAUSE=102`:          102,
	} {
		if got := sbc.Q850Cause(in); got != want {
			t.Errorf("%q: cause %d, want %d", in, got, want)
		}
	}
}

// Over trunks: the record names the trunk that took the call, and the
// numbers as received and as sent in that trunk's format.
func TestCDRTrunkFailoverNumbers(t *testing.T) {
	a, aAddr := startCarrier(t, testcarrier.Options{InviteCode: 503})
	_, bAddr := startCarrier(t, testcarrier.Options{})
	caller := testphone.NewLoopback(t)
	s, recs, _ := startRecordingSBCTail(t, fmt.Sprintf(`
trunks:
  - {name: a, realm: carrier, targets: [%q], normalize: {outbound: [{strip_prefix: "+", add_prefix: "00"}]}}
  - {name: b, realm: carrier, targets: [%q], normalize: {outbound: [{strip_prefix: "+44", add_prefix: "0"}]}}
routing:
  rules:
    - {name: uk, from_realm: enterprise, regex: '^\+44', trunks: [{trunk: a, priority: 1}, {trunk: b, priority: 2}]}
`, aAddr, bAddr))
	caller.Invite(s.enterprise, "+442071234567", "cdr-trunk", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.enterprise)
	caller.Ack(dA, 1, "cdr-trunk-ack")
	s.waitState(t, "confirmed")
	caller.Request(dA, "BYE", 2, "cdr-trunk-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	r := recs.next(t)
	// The SBC's BYE to trunk b answered (INVITE and BYE 200s), so the
	// test does not end with it in flight.
	eventually(t, wait, "trunk b's 200 to BYE", func() bool {
		return testutil.ToFloat64(s.Metrics().Responses.WithLabelValues("carrier", "in", "200")) >= 2
	})
	if len(a.Invites()) != 1 {
		t.Fatalf("trunk a got %d INVITEs", len(a.Invites()))
	}
	if r.Status != cdr.StatusAnswered || r.Trunk != "b" || r.Attempts != 2 || r.RealmIn != "enterprise" || r.RealmOut != "carrier" || r.Route != "uk" {
		t.Errorf("record status %q trunk %q attempts %d realms %s->%s route %q", r.Status, r.Trunk, r.Attempts, r.RealmIn, r.RealmOut, r.Route)
	}
	if r.Callee.Received != "+442071234567" || r.Callee.Sent != "02071234567" || r.Caller.Received != "alice" {
		t.Errorf("numbers caller %+v callee %+v, want callee +442071234567 sent as 02071234567", r.Caller, r.Callee)
	}
}
