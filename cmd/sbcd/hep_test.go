package main

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/hepjs"
	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestHEPFromSBCD: the sbcd binary, configured with a hep section, sends
// a collector port every SIP message of a call on both legs: as many as
// the caller and the callee saw on the wire, byte for byte, each with leg
// A's Call-ID as correlation ID and the configured capture ID, decoded by
// hep-js (internal/hepjs), not by package hep. SIGTERM then writes out
// what is queued.
func TestHEPFromSBCD(t *testing.T) {
	hepjs.Require(t)
	col, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got [][]byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, _, err := col.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, append([]byte(nil), buf[:n]...))
			mu.Unlock()
		}
	}()
	defer func() { col.Close(); <-done }()

	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	ports := freePorts(t, "udp", 2)
	carrier, enterprise := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	p := runSBCD(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: %q}
  - {name: enterprise, listen: %q}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q]}
media: {enabled: false}
admin: {listen: %q}
hep: {address: %q, capture_id: 99}
`, carrier, enterprise, callee.Addr, admin, col.LocalAddr().String()), admin, false)

	type dgram struct{ src, dst, payload string }
	var wire []dgram
	tap := func(ph *testphone.Phone, sbc string) func(bool, []byte) {
		return func(out bool, b []byte) {
			if out {
				wire = append(wire, dgram{ph.Addr, sbc, string(b)})
			} else {
				wire = append(wire, dgram{sbc, ph.Addr, string(b)})
			}
		}
	}
	caller.Wire, callee.Wire = tap(caller, carrier), tap(callee, enterprise)

	const callID = "sbcd-hep-call"
	const wait = 3 * time.Second
	caller.Invite(carrier, "1000", callID, testphone.TestSDP)
	caller.ExpectResponse(100, sip.INVITE, wait)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 180, "Ringing", "callee1", "")
	caller.ExpectResponse(180, sip.INVITE, wait)
	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, carrier)
	caller.Ack(dA, 1, "sbcd-hep-ack")
	callee.ExpectRequest(sip.ACK, wait)
	callee.Request(testphone.CalleeDialog(inv, "callee1"), "BYE", 2, "sbcd-hep-bye", "")
	bye := caller.ExpectRequest(sip.BYE, wait)
	caller.Answer(bye, 200, "OK", "", "")
	callee.ExpectResponse(200, sip.BYE, wait)
	none := func(sip.Message) bool { return false }
	caller.Next(300*time.Millisecond, none)
	callee.Next(300*time.Millisecond, none)
	if code, _ := p.term(10 * time.Second); code != 0 {
		t.Fatalf("sbcd exited %d after SIGTERM", code)
	}
	time.Sleep(100 * time.Millisecond) // the last datagrams into the collector's socket

	mu.Lock()
	pkts := append([][]byte(nil), got...)
	mu.Unlock()
	want := map[dgram]int{}
	for _, w := range wire {
		want[w]++
	}
	seen := map[dgram]int{}
	for i, d := range hepjs.Decode(t, pkts) {
		if d == nil {
			t.Fatalf("hep-js refused packet %d: %x", i, pkts[i])
		}
		if d.Rcinfo.CorrelationID != callID || d.Rcinfo.CaptureID != 99 || d.Rcinfo.PayloadType != 1 {
			t.Errorf("packet %d (%q): rcinfo %+v, want correlation ID %q, capture ID 99, SIP",
				i, strings.SplitN(d.Payload, "\r\n", 2)[0], d.Rcinfo, callID)
		}
		seen[dgram{fmt.Sprintf("%s:%d", d.Rcinfo.SrcIP, d.Rcinfo.SrcPort), fmt.Sprintf("%s:%d", d.Rcinfo.DstIP, d.Rcinfo.DstPort), d.Payload}]++
	}
	for w, n := range want {
		if seen[w] != n {
			t.Errorf("on the wire %d times, at the collector %d: %s -> %s %q", n, seen[w], w.src, w.dst, strings.SplitN(w.payload, "\r\n", 2)[0])
		}
	}
	if len(pkts) != len(wire) {
		t.Errorf("collector got %d packets, the phones saw %d messages", len(pkts), len(wire))
	}
	if len(wire) < 13 {
		t.Errorf("the phones saw only %d messages", len(wire))
	}
	t.Logf("sbcd mirrored %d SIP messages of both legs to the collector", len(pkts))
}
