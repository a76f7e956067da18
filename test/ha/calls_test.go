package ha_test

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/labns"
	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
)

const (
	wait  = 3 * time.Second
	ptime = 20 * time.Millisecond
)

// sbcExtSI is where callers send: the carrier VIP's SIP address.
func sbcExtSI() string { return net.JoinHostPort(vipExt, "5060") }

func udp(t testing.TB, ns, ip string, port int) *net.UDPConn {
	t.Helper()
	c, err := labns.UDP(ns, ip, port)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func offer(ip string, port, version int) string {
	fam := "IP4"
	if strings.Contains(ip, ":") {
		fam = "IP6"
	}
	return fmt.Sprintf("v=0\r\no=phone 4242 %d IN %s %s\r\ns=-\r\nc=IN %s %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n",
		version, fam, ip, fam, ip, port)
}

func sdpAddr(t testing.TB, m sip.Message, want string) netip.AddrPort {
	t.Helper()
	s, err := mediarelay.ParseSDP(m.Body())
	if err != nil || len(s.Media) == 0 {
		t.Fatalf("SDP: %v\n%s", err, m.Body())
	}
	md := s.Media[0]
	if md.Addr.String() != want {
		t.Fatalf("SDP media address %v, want the VIP %s", md.Addr, want)
	}
	return netip.AddrPortFrom(md.Addr, uint16(md.Port))
}

// attempts makes each INVITE's request-URI user unique, so the PBX can
// tell a late INVITE of an abandoned attempt from the one it waits for.
var attempts atomic.Int32

// phones is the carrier (callers, one SIP socket per call) and the PBX
// (one SIP socket at 198.51.100.10:5060 for every call's leg B).
type phones struct {
	t      testing.TB
	callee *testphone.Phone
	mu     sync.Mutex // callee is shared by the sender and the test
	calls  []*call
	ends   map[int]*call // call i's sockets, made once
	stop   chan struct{}
	once   sync.Once
	close  func() // closes the sockets (before the test ends: the bench reuses the ports)
	wg     sync.WaitGroup
}

// call is one established call with RTP both ways.
type call struct {
	i          int
	user       string
	caller     *testphone.Phone
	dA, dB     testphone.Dialog
	aRTP, bRTP *testphone.RTPEnd
	aTo, bTo   netip.AddrPort // where each side sends: the SBC's VIP ports
	ssrcA      uint32
	ssrcB      uint32
	mu         sync.Mutex
	sent       uint16 // packets sent each way so far
	sending    bool
	cseqA      int // next CSeq of the caller
	cseqB      int // next CSeq of the callee
}

func newPhones(t testing.TB) *phones {
	conn := udp(t, ns("ent"), pbxHost, 5060)
	p := &phones{t: t, callee: testphone.New(t, conn), ends: map[int]*call{}, stop: make(chan struct{})}
	p.wg.Add(1)
	go p.pump()
	p.close = func() {
		p.once.Do(func() {
			close(p.stop)
			p.wg.Wait()
			conn.Close()
		})
	}
	t.Cleanup(p.close)
	return p
}

// pump sends one RTP packet each way for every sending call every 20 ms,
// the pace of G.711.
func (p *phones) pump() {
	defer p.wg.Done()
	tick := time.NewTicker(ptime)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		calls := append([]*call(nil), p.calls...)
		p.mu.Unlock()
		for _, c := range calls {
			c.mu.Lock()
			if c.sending {
				seq := c.sent
				c.sent++
				_ = c.aRTP.SendOne(net.UDPAddrFromAddrPort(c.aTo), c.ssrcA, seq)
				_ = c.bRTP.SendOne(net.UDPAddrFromAddrPort(c.bTo), c.ssrcB, seq)
			}
			c.mu.Unlock()
		}
	}
}

// establish sets up call i (caller SIP port 5100+i, RTP 16000+2i in car;
// RTP 18000+2i in ent) through the carrier VIP and starts its media.
func (p *phones) establish(i int) *call {
	p.t.Helper()
	c, err := p.try(i, fmt.Sprintf("ha-%d-%d", i, time.Now().UnixNano()), wait, 500*time.Millisecond)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// try attempts call i once: the INVITE must get its 100 Trying within
// patience (else the error says so and nothing else is sent).
func (p *phones) try(i int, callID string, patience, retransmit time.Duration) (*call, error) {
	p.t.Helper()
	c := &call{i: i, user: fmt.Sprintf("%d%04d", 2000+i, attempts.Add(1)), ssrcA: 0xA0000 + uint32(i), ssrcB: 0xB0000 + uint32(i), cseqA: 2, cseqB: 1}
	e, ok := p.ends[i]
	if !ok {
		e = &call{
			caller: testphone.New(p.t, udp(p.t, ns("car"), carrierHost, 5100+i)),
			aRTP:   testphone.NewRTPEnd(p.t, udp(p.t, ns("car"), carrierHost, 16000+2*i)),
			bRTP:   testphone.NewRTPEnd(p.t, udp(p.t, ns("ent"), pbxHost, 18000+2*i)),
		}
		p.ends[i] = e
	}
	c.caller, c.aRTP, c.bRTP = e.caller, e.aRTP, e.bRTP
	// Like a real UAC on UDP, retransmit the INVITE (same branch) until
	// the 100 Trying: one sent while no node serves the VIP is lost.
	trying := false
	for end := time.Now().Add(patience); !trying && time.Now().Before(end); {
		c.caller.Invite(sbcExtSI(), c.user, callID, offer(carrierHost, int(c.aRTP.Addr().Port()), 1))
		trying = c.caller.Next(min(retransmit, time.Until(end)), func(m sip.Message) bool {
			r, ok := m.(*sip.Response)
			return ok && r.CallID().Value() == callID && r.StatusCode == 100
		}) != nil
	}
	if !trying {
		return nil, fmt.Errorf("call %d: no 100 Trying within %v", i, patience)
	}
	p.mu.Lock()
	im := p.callee.Next(wait, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE && r.Recipient.User == c.user
	})
	p.mu.Unlock()
	if im == nil {
		return nil, fmt.Errorf("call %d: no INVITE at the PBX", i)
	}
	inv := im.(*sip.Request)
	c.bTo = sdpAddr(p.t, inv, vipInt)
	tag := fmt.Sprintf("pbx%d", i)
	p.callee.Answer(inv, 200, "OK", tag, offer(pbxHost, int(c.bRTP.Addr().Port()), 1))
	om := c.caller.Next(wait, func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.CallID().Value() == callID && r.StatusCode == 200
	})
	if om == nil {
		return nil, fmt.Errorf("call %d: no 200 for the caller", i)
	}
	res := om.(*sip.Response)
	c.aTo = sdpAddr(p.t, res, vipExt)
	c.dA = testphone.CallerDialog(res, sbcExtSI())
	c.caller.Ack(c.dA, 1, callID+"-ack")
	p.mu.Lock()
	am := p.callee.Next(wait, func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.ACK && r.CallID().Value() == inv.CallID().Value()
	})
	p.mu.Unlock()
	if am == nil {
		return nil, fmt.Errorf("call %d: no ACK at the PBX", i)
	}
	c.dB = testphone.CalleeDialog(inv, tag)
	c.sending = true
	p.mu.Lock()
	for len(p.calls) <= i {
		p.calls = append(p.calls, nil)
	}
	p.calls[i] = c
	p.mu.Unlock()
	return c, nil
}

// gaps is, for each direction of the call, the longest run of packets
// that did not arrive among those sent in [from, upTo), as time (ptime
// per packet), and how many of them arrived in all.
func (c *call) gaps(from, upTo uint16) (worst time.Duration, got int) {
	for _, r := range []struct {
		end  *testphone.RTPEnd
		ssrc uint32
	}{{c.bRTP, c.ssrcA}, {c.aRTP, c.ssrcB}} {
		seqs := r.end.Received(r.ssrc)
		var in []int
		for _, s := range seqs {
			if s >= from && s < upTo {
				in = append(in, int(s))
			}
		}
		sort.Ints(in)
		got += len(in)
		prev := int(from) - 1
		for _, s := range append(in, int(upTo)) {
			if d := time.Duration(s-prev-1) * ptime; d > worst {
				worst = d
			}
			prev = s
		}
	}
	return worst, got
}

func (c *call) sentSoFar() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent
}

// flowing waits until packets sent from now on arrive both ways.
func (c *call) flowing(d time.Duration) error {
	from := c.sentSoFar()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if last(c.bRTP.Received(c.ssrcA)) > from && last(c.aRTP.Received(c.ssrcB)) > from {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("call %d: media not flowing both ways (sent %d; A->B last %d, B->A last %d)",
		c.i, c.sentSoFar(), last(c.bRTP.Received(c.ssrcA)), last(c.aRTP.Received(c.ssrcB)))
}

func last(s []uint16) uint16 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

// bye ends the call from the caller (fromCaller) or the callee: the sender
// gets 200 from the SBC, the other side the BYE of its leg.
func (p *phones) bye(c *call, fromCaller bool) error {
	c.mu.Lock()
	c.sending = false
	c.mu.Unlock()
	if fromCaller {
		c.caller.Request(c.dA, "BYE", c.cseqA, fmt.Sprintf("bye-a-%d-%d", c.i, time.Now().UnixNano()), "")
		if m := c.caller.Next(wait, isResp(200, sip.BYE, c.dA.CallID)); m == nil {
			return fmt.Errorf("call %d: no 200 to the caller's BYE", c.i)
		}
		p.mu.Lock()
		m := p.callee.Next(wait, isReq(sip.BYE, c.dB.CallID))
		p.mu.Unlock()
		if m == nil {
			return fmt.Errorf("call %d: the PBX got no BYE", c.i)
		}
		p.callee.Answer(m.(*sip.Request), 200, "OK", "", "")
		return nil
	}
	p.mu.Lock()
	p.callee.Request(c.dB, "BYE", c.cseqB, fmt.Sprintf("bye-b-%d-%d", c.i, time.Now().UnixNano()), "")
	m := p.callee.Next(wait, isResp(200, sip.BYE, c.dB.CallID))
	p.mu.Unlock()
	if m == nil {
		return fmt.Errorf("call %d: no 200 to the PBX's BYE", c.i)
	}
	bm := c.caller.Next(wait, isReq(sip.BYE, c.dA.CallID))
	if bm == nil {
		return fmt.Errorf("call %d: the caller got no BYE", c.i)
	}
	c.caller.Answer(bm.(*sip.Request), 200, "OK", "", "")
	return nil
}

func isResp(code int, method sip.RequestMethod, callID string) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == code && r.CSeq().MethodName == method && r.CallID().Value() == callID
	}
}

func isReq(method sip.RequestMethod, callID string) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == method && r.CallID().Value() == callID
	}
}

// firstNewCall places a new call (index i) from start, retransmitting its
// INVITE every 50 ms until a node answers; it returns the time from start
// to the caller's 200.
func (p *phones) firstNewCall(i int, start time.Time, limit time.Duration) (*call, time.Duration, error) {
	c, err := p.try(i, fmt.Sprintf("new-%d-%d", i, time.Now().UnixNano()), limit, 50*time.Millisecond)
	if err != nil {
		return nil, 0, err
	}
	return c, time.Since(start), nil
}

// reinvite sends a re-INVITE from the PBX (same media) and completes it:
// the caller must get it in its own dialog with the next CSeq the SBC
// uses on leg A (want), and the PBX the caller's 200.
func (p *phones) reinvite(c *call, wantCSeq uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	branch := fmt.Sprintf("reinv-%d-%d", c.i, time.Now().UnixNano())
	p.callee.Request(c.dB, "INVITE", c.cseqB, branch, offer(pbxHost, int(c.bRTP.Addr().Port()), 2))
	m := c.caller.Next(wait, isReq(sip.INVITE, c.dA.CallID))
	if m == nil {
		return fmt.Errorf("call %d: re-INVITE not relayed to the caller", c.i)
	}
	re := m.(*sip.Request)
	if re.CSeq().SeqNo != wantCSeq || testphone.FromTag(re.From()) != c.dA.RemoteTag {
		return fmt.Errorf("call %d: re-INVITE to the caller with CSeq %d (want %d), From tag %q (want %q)",
			c.i, re.CSeq().SeqNo, wantCSeq, testphone.FromTag(re.From()), c.dA.RemoteTag)
	}
	if tt, _ := re.To().Params.Get("tag"); tt != c.dA.LocalTag {
		return fmt.Errorf("call %d: re-INVITE To tag %q, want the caller's %q", c.i, tt, c.dA.LocalTag)
	}
	if got := sdpAddr(p.t, re, vipExt); got != c.aTo {
		return fmt.Errorf("call %d: media moved on re-INVITE: %v, was %v", c.i, got, c.aTo)
	}
	c.caller.Answer(re, 200, "OK", "", offer(carrierHost, int(c.aRTP.Addr().Port()), 2))
	if p.callee.Next(wait, isResp(200, sip.INVITE, c.dB.CallID)) == nil {
		return fmt.Errorf("call %d: no 200 to the PBX's re-INVITE", c.i)
	}
	p.callee.Ack(c.dB, c.cseqB, branch+"-ack")
	if c.caller.Next(wait, isReq(sip.ACK, c.dA.CallID)) == nil {
		return fmt.Errorf("call %d: the caller got no ACK", c.i)
	}
	c.cseqB++
	return nil
}
