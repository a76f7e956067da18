package test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// autoAnswer is a PBX for load tests: it answers every INVITE 200 with an
// SDP naming the next of its media sockets, and every BYE 200. It runs on
// its own goroutine, so it reports problems through errs, never t.Fatal.
type autoAnswer struct {
	conn  *net.UDPConn
	media []netip.AddrPort
	next  int
	errs  chan error
	done  chan struct{}
	// sdp for each call's INVITE, by Call-ID: the SBC's side of leg B.
	offers chan mediarelay.Media
	byes   atomic.Int64 // BYE requests answered (retransmissions too)
}

func startAutoAnswer(conn *net.UDPConn, media []netip.AddrPort) *autoAnswer {
	a := &autoAnswer{conn: conn, media: media, errs: make(chan error, 16), done: make(chan struct{}), offers: make(chan mediarelay.Media, len(media))}
	go a.run()
	return a
}

func (a *autoAnswer) fail(err error) {
	select {
	case a.errs <- err:
	default:
	}
}

func (a *autoAnswer) run() {
	defer close(a.done)
	p := sip.NewParser()
	buf := make([]byte, 65535)
	seen := map[string]string{} // Call-ID -> SDP answered, for retransmissions
	for {
		n, src, err := a.conn.ReadFromUDP(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				a.fail(err)
			}
			return
		}
		m, err := p.ParseSIP(buf[:n])
		if err != nil {
			a.fail(fmt.Errorf("PBX got an unparsable message: %w", err))
			continue
		}
		req, ok := m.(*sip.Request)
		if !ok {
			continue
		}
		var body string
		switch req.Method {
		case sip.INVITE:
			cid := req.CallID().Value()
			body, ok = seen[cid]
			if !ok {
				if a.next >= len(a.media) {
					a.fail(errors.New("more INVITEs than media sockets"))
					continue
				}
				md := a.media[a.next]
				a.next++
				body = offerSDP(md.Addr().String(), int(md.Port()), "sendrecv", 1)
				seen[cid] = body
				if s, err := mediarelay.ParseSDP(req.Body()); err == nil {
					a.offers <- s.Media[0]
				} else {
					a.fail(err)
				}
			}
		case sip.BYE:
			a.byes.Add(1)
		default:
			continue // ACK
		}
		a.respond(req, src, body)
	}
}

func (a *autoAnswer) respond(req *sip.Request, src *net.UDPAddr, body string) {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 200 OK\r\n")
	for _, v := range req.GetHeaders("Via") {
		fmt.Fprintf(&b, "Via: %s\r\n", v.Value())
	}
	to := req.To().Value()
	if !strings.Contains(to, "tag=") {
		to += ";tag=pbx"
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\nContact: <sip:pbx@%s>\r\n",
		req.From().Value(), to, req.CallID().Value(), req.CSeq().Value(), a.conn.LocalAddr())
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	if _, err := a.conn.WriteToUDP([]byte(b.String()), src); err != nil {
		a.fail(err)
	}
}

// Calls at once, each with a 50 pps G.711 stream in both directions, for
// a bounded time: every packet of every stream must arrive, the rate
// offered must be the rate claimed, and the relay's CPU is reported. CI
// runs 20 calls for 3 s (2,000 pps: the function); SBC_BENCH_LOAD=1 (make
// bench-load) runs the load: 500 calls for 10 s, 50,000 pps through the
// relay.
// The user-space relay's test (datapath userspace): on the kernel path a
// packet still queued in the relay when a stream is offloaded can arrive
// after the first one the kernel forwards, which this test's strict order
// check would count.
func TestManyConcurrentCallsWithRTP(t *testing.T) {
	needLab(t)
	calls, seconds := 20, 3
	if benchLoad() {
		calls, seconds = 500, 10
	}
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", media: {ports: 30000-33999}}
  - {name: enterprise, listen: "%s:5060", media: {ports: 40000-43999}}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
# The carrier is the carrier realm's known peer (no route into the
# realm names it), so its calls meet the peers' limits, not a stranger's.
guard: {realms: [{realm: carrier, peers: ["`+carrierHost+`"]}]}
media: {timeout: 60s, datapath: userspace}
log: {level: warn}
`, sbcExt, sbcInt, pbxHost)
	cfg := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSBCD(t, cfg)

	aEnds := make([]*testphone.RTPEnd, calls)
	bEnds := make([]*testphone.RTPEnd, calls)
	bAddrs := make([]netip.AddrPort, calls)
	for i := 0; i < calls; i++ {
		aEnds[i] = testphone.NewRTPEnd(t, nsSocket(t, "car", carrierHost, 20000+2*i))
		bEnds[i] = testphone.NewRTPEnd(t, nsSocket(t, "ent", pbxHost, 22000+2*i))
		bAddrs[i] = bEnds[i].Addr()
	}
	pbxConn := nsSocket(t, "ent", pbxHost, 5060)
	pbx := startAutoAnswer(pbxConn, bAddrs)
	defer func() { pbxConn.Close(); <-pbx.done }()
	caller := testphone.New(t, nsSocket(t, "car", carrierHost, 5062))

	// Signaling: one call at a time (a few ms each).
	aTo := make([]*net.UDPAddr, calls) // where each caller stream goes: the SBC's carrier side
	bTo := make([]*net.UDPAddr, calls) // where each callee stream goes: the SBC's enterprise side
	dialogs := make([]testphone.Dialog, calls)
	start := time.Now()
	for i := 0; i < calls; i++ {
		cid := fmt.Sprintf("many-%d", i)
		caller.Invite(sbcExt+":5060", "1000", cid, offerSDP(carrierHost, 20000+2*i, "sendrecv", 1))
		ok := caller.ExpectResponse(200, sip.INVITE, 5*time.Second)
		if ok.CallID().Value() != cid {
			t.Fatalf("200 for %s while placing %s", ok.CallID().Value(), cid)
		}
		sa, err := mediarelay.ParseSDP(ok.Body())
		if err != nil {
			t.Fatal(err)
		}
		aTo[i] = net.UDPAddrFromAddrPort(netip.AddrPortFrom(sa.Media[0].Addr, uint16(sa.Media[0].Port)))
		mb := <-pbx.offers
		bTo[i] = net.UDPAddrFromAddrPort(netip.AddrPortFrom(mb.Addr, uint16(mb.Port)))
		dialogs[i] = testphone.CallerDialog(ok, sbcExt+":5060")
		caller.Ack(dialogs[i], 1, cid+"-ack")
	}
	t.Logf("%d calls set up in %v", calls, time.Since(start).Round(time.Millisecond))
	if n := s.activeCalls(t); n != calls {
		t.Fatalf("%d active calls, want %d", n, calls)
	}

	// Media: every 20 ms, one packet on each of the 2*calls streams.
	cpu0 := s.metric(t, "process_cpu_seconds_total")
	tick := time.NewTicker(20 * time.Millisecond)
	rounds := seconds * 50
	mediaStart := time.Now()
	for r := 0; r < rounds; r++ {
		<-tick.C
		for i := 0; i < calls; i++ {
			if err := aEnds[i].SendOne(aTo[i], uint32(0xA0000+i), uint16(r)); err != nil {
				t.Fatal(err)
			}
			if err := bEnds[i].SendOne(bTo[i], uint32(0xB0000+i), uint16(r)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tick.Stop()
	elapsed := time.Since(mediaStart)
	time.Sleep(500 * time.Millisecond) // drain
	cpu := s.metric(t, "process_cpu_seconds_total") - cpu0

	lostStreams, lost := 0, 0
	for i := 0; i < calls; i++ {
		for _, c := range []struct {
			end  *testphone.RTPEnd
			ssrc uint32
		}{{bEnds[i], uint32(0xA0000 + i)}, {aEnds[i], uint32(0xB0000 + i)}} {
			if err := c.end.CheckStream(c.ssrc, 0, rounds); err != nil {
				lostStreams++
				lost += rounds - len(c.end.Received(c.ssrc))
				if lostStreams <= 3 {
					t.Error(err)
				}
			}
		}
	}
	pps := float64(2*calls*rounds) / elapsed.Seconds()
	// The ticker drops the ticks a late sender misses: a slow generator
	// shows as a longer elapsed time, never as a pass at a lower rate.
	if want := float64(2 * calls * 50); pps < 0.95*want {
		t.Errorf("offered %.0f pps, under 95%% of the %.0f pps claimed: the generator fell behind", pps, want)
	}
	t.Logf("%d calls, %d streams, %.0f pps for %v: %d packets lost on %d streams; sbcd CPU %.0f%% of one core",
		calls, 2*calls, pps, elapsed.Round(time.Millisecond), lost, lostStreams, 100*cpu/elapsed.Seconds())
	fmt.Printf("many calls: %d calls, %.0f pps, loss %d packets, sbcd CPU %.0f%% of one core\n", calls, pps, lost, 100*cpu/elapsed.Seconds())

	for i := 0; i < calls; i++ {
		caller.Request(dialogs[i], "BYE", 2, fmt.Sprintf("many-bye-%d", i), "")
		caller.ExpectResponse(200, sip.BYE, 5*time.Second)
	}
	s.waitIdle(t)
	select {
	case err := <-pbx.errs:
		t.Fatalf("PBX: %v", err)
	default:
	}
	if n := s.metric(t, "sbc_media_ports_in_use"); n != 0 {
		t.Errorf("%v media ports still allocated", n)
	}
}
