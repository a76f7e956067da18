package sbc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/hepjs"
	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/sbc"
)

// collector is a HEP collector's UDP port: it keeps every datagram.
type collector struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	done chan struct{}
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{conn: c, done: make(chan struct{})}
	go func() {
		defer close(col.done)
		buf := make([]byte, 65535)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			col.mu.Lock()
			col.got = append(col.got, append([]byte(nil), buf[:n]...))
			col.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-col.done })
	return col
}

func (c *collector) packets() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.got...)
}

// datagram is one SIP message as a phone saw it on the wire.
type datagram struct{ src, dst, payload string }

func (d datagram) String() string {
	return fmt.Sprintf("%s -> %s %q", d.src, d.dst, strings.SplitN(d.payload, "\r\n", 2)[0])
}

// TestHEPMirrorsBothLegs: every SIP message of a call, on both legs, as
// the caller and the callee saw it on the wire, reaches the collector
// once, byte for byte, with leg A's Call-ID as the correlation ID on both
// legs and the configured capture ID; decoded by hep-js, not by package
// hep.
func TestHEPMirrorsBothLegs(t *testing.T) {
	hepjs.Require(t)
	col := newCollector(t)
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	cp, ep := freePort(t), freePort(t)
	s := runSBC(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"]}
hep: {address: "%s", capture_id: 4242, password: hep-secret}
`, cp, ep, callee.Addr, col.conn.LocalAddr()), cp, ep)

	var wire []datagram
	tap := func(p *testphone.Phone, sbcAddr string) func(bool, []byte) {
		return func(out bool, b []byte) {
			if out {
				wire = append(wire, datagram{p.Addr, sbcAddr, string(b)})
			} else {
				wire = append(wire, datagram{sbcAddr, p.Addr, string(b)})
			}
		}
	}
	caller.Wire, callee.Wire = tap(caller, s.carrier), tap(callee, s.enterprise)
	start := time.Now()

	const callID = "hep-leg-a-call-id"
	dA, dB, inv := established(t, s, caller, callee, callID)
	_ = dB
	legB := inv.CallID().Value()
	if legB == callID {
		t.Fatal("leg B reuses leg A's Call-ID: the correlation check would prove nothing")
	}
	caller.Request(dA, "BYE", 2, "hep-bye", "")
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
	// Whatever else the SBC sends (a retransmission) the phones see too.
	none := func(sip.Message) bool { return false }
	caller.Next(300*time.Millisecond, none)
	callee.Next(300*time.Millisecond, none)

	// Everything the SBC queued reaches the collector (loopback drops
	// nothing at this rate).
	deadline := time.Now().Add(3 * time.Second)
	for {
		st := s.HEPStats()
		if st.Queued > 0 && st.Sent == st.Queued && len(col.packets()) == int(st.Sent) {
			if st.Dropped != 0 || st.Errors != 0 {
				t.Errorf("HEP stats %+v: packets lost", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HEP stats %+v, collector has %d packets", st, len(col.packets()))
		}
		time.Sleep(10 * time.Millisecond)
	}

	dec := hepjs.Decode(t, col.packets())
	hepSeen := map[datagram]int{}
	legs := map[string]int{}
	for i, d := range dec {
		if d == nil {
			t.Fatalf("hep-js refused packet %d: %x", i, col.packets()[i])
		}
		r := d.Rcinfo
		if r.ProtocolFamily != 2 || r.Protocol != 17 || r.PayloadType != 1 || r.CaptureID != 4242 || r.CapturePass != "hep-secret" {
			t.Errorf("packet %d: rcinfo %+v, want IPv4, UDP, SIP, capture ID 4242, the password", i, r)
		}
		if r.TimeSeconds < start.Unix()-1 || r.TimeSeconds > time.Now().Unix()+1 {
			t.Errorf("packet %d: time %d outside the test", i, r.TimeSeconds)
		}
		if r.CorrelationID != callID {
			t.Errorf("packet %d (%s): correlation ID %q, want leg A's Call-ID %q",
				i, strings.SplitN(d.Payload, "\r\n", 2)[0], r.CorrelationID, callID)
		}
		g := datagram{fmt.Sprintf("%s:%d", r.SrcIP, r.SrcPort), fmt.Sprintf("%s:%d", r.DstIP, r.DstPort), d.Payload}
		hepSeen[g]++
		switch {
		case strings.Contains(d.Payload, "Call-ID: "+callID+"\r\n"):
			legs["a"]++
		case strings.Contains(d.Payload, "Call-ID: "+legB+"\r\n"):
			legs["b"]++
		default:
			t.Errorf("packet %d of neither leg: %s", i, g)
		}
	}
	wantSeen := map[datagram]int{}
	perLeg := map[string]int{}
	for _, w := range wire {
		wantSeen[w]++
		if w.src == caller.Addr || w.dst == caller.Addr {
			perLeg["a"]++
		} else {
			perLeg["b"]++
		}
	}
	for w, n := range wantSeen {
		if hepSeen[w] != n {
			t.Errorf("seen on the wire %d times, mirrored %d: %s", n, hepSeen[w], w)
		}
	}
	for g, n := range hepSeen {
		if _, ok := wantSeen[g]; !ok {
			t.Errorf("mirrored %d times, never on a phone's wire: %s", n, g)
		}
	}
	if len(dec) != len(wire) || legs["a"] != perLeg["a"] || legs["b"] != perLeg["b"] {
		t.Errorf("collector: %d packets (leg A %d, leg B %d); the phones saw %d (leg A %d, leg B %d)",
			len(dec), legs["a"], legs["b"], len(wire), perLeg["a"], perLeg["b"])
	}
	// INVITE, 100, 180, 200, ACK, BYE, 200 on A; INVITE, 180, 200, ACK,
	// BYE, 200 on B: fewer means a message was missed on both sides.
	if perLeg["a"] < 7 || perLeg["b"] < 6 {
		t.Errorf("the phones saw too few messages: %v", perLeg)
	}
	t.Logf("%d SIP messages mirrored (leg A %d, leg B %d), all with correlation ID %q", len(dec), legs["a"], legs["b"], callID)
}

// TestHEPCallMediaStats: when a call with relayed media ends, its media
// stats (what the admin API shows) go to the collector as one JSON
// document, HEP type 100 (log), with leg A's Call-ID as correlation ID.
func TestHEPCallMediaStats(t *testing.T) {
	hepjs.Require(t)
	col := newCollector(t)
	cp, ep := freePort(t), freePort(t)
	cm, em := mediaRange(t, 10), mediaRange(t, 10)
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: %s}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: %s}}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"]}
hep: {address: "%s", capture_id: 7}
`, cp, cm, ep, em, callee.Addr, col.conn.LocalAddr())))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	lo := netip.MustParseAddr("127.0.0.1")
	anchor, err := mediarelay.NewAnchor(mediarelay.AnchorConfig{
		Realms: []mediarelay.RealmMedia{
			{Name: "carrier", Addr: lo, MinPort: cm.lo, MaxPort: cm.hi},
			{Name: "enterprise", Addr: lo, MinPort: em.lo, MaxPort: em.hi},
		},
		Timeout: time.Minute, Logger: log, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer anchor.Close()
	s, err := sbc.New(cfg, sbc.Options{Logger: log, Media: anchor, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	}()
	carrier := fmt.Sprintf("127.0.0.1:%d", cp)

	rtpA, rtpB := loopRTP(t), loopRTP(t)
	const callID = "hep-media-call"
	caller.Invite(carrier, "1000", callID, sdpFor(rtpA, 1))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 200, "OK", "callee1", sdpFor(rtpB, 1))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, carrier)
	caller.Ack(dA, 1, callID+"-ack")
	callee.ExpectRequest(sip.ACK, wait)
	flow(t, rtpA, rtpB, sdpPort(t, ok), sdpPort(t, inv), 0xa1, 0xb1, 1, 50)
	caller.Request(dA, "BYE", 2, "hep-media-bye", "")
	bye := callee.ExpectRequest(sip.BYE, wait)
	callee.Answer(bye, 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)

	var doc *hepjs.Packet
	waitFor(t, "the call's media stats at the collector", func() bool {
		for _, d := range hepjs.Decode(t, col.packets()) {
			if d != nil && d.Rcinfo.PayloadType == 100 {
				doc = d
				return true
			}
		}
		return false
	})
	if doc.Rcinfo.CorrelationID != callID || doc.Rcinfo.CaptureID != 7 {
		t.Errorf("media stats rcinfo %+v, want correlation ID %q and capture ID 7", doc.Rcinfo, callID)
	}
	var stats struct {
		Event  string               `json:"event"`
		CallID string               `json:"call_id"`
		Media  mediarelay.CallMedia `json:"media"`
	}
	if err := json.Unmarshal([]byte(doc.Payload), &stats); err != nil {
		t.Fatalf("media stats payload %q: %v", doc.Payload, err)
	}
	if stats.Event != "call_media" || stats.CallID != callID || len(stats.Media.Streams) != 1 {
		t.Fatalf("media stats %+v", stats)
	}
	if st := stats.Media.Streams[0]; st.FromA.Packets < 50 || st.FromB.Packets < 50 {
		t.Errorf("stream stats %+v: want at least the 50 packets sent each way", st)
	}
}

// recConn records the bytes a stream phone writes and reads.
type recConn struct {
	net.Conn
	mu      sync.Mutex
	in, out bytes.Buffer
}

func (c *recConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.in.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.mu.Lock()
	c.out.Write(b[:n])
	c.mu.Unlock()
	return n, err
}

// TestHEPMirrorsTCP: a caller over TCP (a connection it opened to the
// SBC's listener), the callee over UDP. Leg A's messages are mirrored as
// TCP, byte for byte what crossed the connection each way, leg B's as
// UDP, all with leg A's Call-ID as correlation ID.
func TestHEPMirrorsTCP(t *testing.T) {
	hepjs.Require(t)
	col := newCollector(t)
	callee := testphone.NewLoopback(t)
	cp, ep := freePort(t), freePort(t)
	s := runSBC(t, fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", transports: [udp, tcp]}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"]}
hep: {address: "%s"}
`, cp, ep, callee.Addr, col.conn.LocalAddr()), cp, ep)
	var wire []datagram
	callee.Wire = func(out bool, b []byte) {
		if out {
			wire = append(wire, datagram{callee.Addr, s.enterprise, string(b)})
		} else {
			wire = append(wire, datagram{s.enterprise, callee.Addr, string(b)})
		}
	}
	c, err := net.Dial("tcp", s.carrier)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recConn{Conn: c}
	caller := testphone.NewStream(t, "TCP", c.LocalAddr().String())
	caller.Use(rc)

	const callID = "hep-tcp-leg-a"
	caller.Invite("sip:1000@"+s.carrier+";transport=tcp", callID, testphone.TestSDP)
	caller.ExpectResponse(100, sip.INVITE, wait)
	inv := callee.ExpectRequest(sip.INVITE, wait)
	callee.Answer(inv, 200, "OK", "callee1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	caller.Ack(nil, testphone.CallerDialog(ok, s.carrier), 1, "hep-tcp-ack")
	callee.ExpectRequest(sip.ACK, wait)
	callee.Request(testphone.CalleeDialog(inv, "callee1"), "BYE", 2, "hep-tcp-bye", "")
	bye := caller.ExpectRequest(sip.BYE, wait)
	caller.Answer(bye, 200, "OK", "", "")
	callee.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
	callee.Next(300*time.Millisecond, func(sip.Message) bool { return false })

	var dec []*hepjs.Packet
	waitFor(t, "every message at the collector", func() bool {
		st := s.HEPStats()
		return st.Queued > 0 && st.Sent == st.Queued && len(col.packets()) == int(st.Sent)
	})
	dec = hepjs.Decode(t, col.packets())
	var toCaller, fromCaller bytes.Buffer
	seenB := map[datagram]int{}
	for i, d := range dec {
		if d == nil {
			t.Fatalf("hep-js refused packet %d", i)
		}
		r := d.Rcinfo
		if r.CorrelationID != callID {
			t.Errorf("packet %d (%q): correlation ID %q, want %q", i, strings.SplitN(d.Payload, "\r\n", 2)[0], r.CorrelationID, callID)
		}
		src, dst := fmt.Sprintf("%s:%d", r.SrcIP, r.SrcPort), fmt.Sprintf("%s:%d", r.DstIP, r.DstPort)
		switch {
		case src == c.LocalAddr().String() && dst == s.carrier:
			fromCaller.WriteString(d.Payload)
		case dst == c.LocalAddr().String() && src == s.carrier:
			toCaller.WriteString(d.Payload)
		default:
			seenB[datagram{src, dst, d.Payload}]++
			if r.Protocol != 17 {
				t.Errorf("leg B packet %d: protocol %d, want UDP", i, r.Protocol)
			}
			continue
		}
		if r.Protocol != 6 {
			t.Errorf("leg A packet %d: protocol %d, want TCP", i, r.Protocol)
		}
	}
	rc.mu.Lock()
	in, out := rc.in.String(), rc.out.String()
	rc.mu.Unlock()
	if fromCaller.String() != out {
		t.Errorf("mirrored from the caller:\n%s\nthe caller wrote:\n%s", fromCaller.String(), out)
	}
	if toCaller.String() != in {
		t.Errorf("mirrored to the caller:\n%s\nthe caller read:\n%s", toCaller.String(), in)
	}
	want := map[datagram]int{}
	for _, w := range wire {
		want[w]++
	}
	if len(want) != len(seenB) {
		t.Errorf("leg B: %d distinct messages mirrored, the callee saw %d", len(seenB), len(want))
	}
	for w, n := range want {
		if seenB[w] != n {
			t.Errorf("leg B: seen %d times, mirrored %d: %s", n, seenB[w], w)
		}
	}
	// INVITE, ACK, 200 out; 100, 200, BYE in.
	if !strings.HasPrefix(out, "INVITE ") || strings.Count(out, "\r\n\r\n") != 3 || strings.Count(in, "\r\n\r\n") != 3 || !strings.Contains(in, "\nBYE sip:") {
		t.Errorf("the caller's connection carried too little:\nout %q\nin %q", out, in)
	}
}

// TestHEPMirrorsTLS: on a TLS connection the caller opened, the messages
// are mirrored in the clear (after decryption), as TCP, with leg A's
// Call-ID as correlation ID.
func TestHEPMirrorsTLS(t *testing.T) {
	hepjs.Require(t)
	col := newCollector(t)
	pbx := testphone.NewLoopback(t)
	s := startTLSSBC(t, tlsOpts{pbx: pbx.Addr, top: fmt.Sprintf("hep: {address: %q}\n", col.conn.LocalAddr().String())})
	caller := tlsCaller(t, s, "sip")
	const callID = "hep-tls-leg-a"
	caller.Invite("sip:1000@"+s.carrierTLS+";transport=tls", callID, testphone.TestSDP)
	caller.ExpectResponse(100, sip.INVITE, wait)
	inv := pbx.ExpectRequest(sip.INVITE, wait)
	pbx.Answer(inv, 200, "OK", "pbx1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	caller.Ack(nil, testphone.CallerDialog(ok, s.carrierTLS), 1, "ack1")
	pbx.ExpectRequest(sip.ACK, wait)
	caller.Request(nil, testphone.CallerDialog(ok, s.carrierTLS), "BYE", 2, "bye-a", "")
	bye := pbx.ExpectRequest(sip.BYE, wait)
	pbx.Answer(bye, 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	(&testSBC{SBC: s.SBC}).waitIdle(t)

	waitFor(t, "every message at the collector", func() bool {
		st := s.HEPStats()
		return st.Queued > 0 && st.Sent == st.Queued && len(col.packets()) == int(st.Sent)
	})
	var legA []string
	for i, d := range hepjs.Decode(t, col.packets()) {
		if d == nil {
			t.Fatalf("hep-js refused packet %d", i)
		}
		if d.Rcinfo.CorrelationID != callID {
			t.Errorf("packet %d: correlation ID %q", i, d.Rcinfo.CorrelationID)
		}
		if fmt.Sprintf("%s:%d", d.Rcinfo.SrcIP, d.Rcinfo.SrcPort) == s.carrierTLS || fmt.Sprintf("%s:%d", d.Rcinfo.DstIP, d.Rcinfo.DstPort) == s.carrierTLS {
			if d.Rcinfo.Protocol != 6 {
				t.Errorf("TLS leg packet %d: protocol %d, want 6", i, d.Rcinfo.Protocol)
			}
			f := strings.SplitN(d.Payload, " ", 3)
			legA = append(legA, f[0]+" "+f[1])
		}
	}
	want := []string{"INVITE sip:1000@" + s.carrierTLS + ";transport=tls", "SIP/2.0 100", "SIP/2.0 200", "ACK sip:sbc@" + s.carrierTLS + ";transport=tls", "BYE sip:sbc@" + s.carrierTLS + ";transport=tls", "SIP/2.0 200"}
	// Sorted: a message the SBC writes is queued once its write returns,
	// so the caller's answer to it may be queued first.
	slices.Sort(legA)
	slices.Sort(want)
	if strings.Join(legA, "|") != strings.Join(want, "|") {
		t.Errorf("TLS leg mirrored %q, want %q", legA, want)
	}
}
