package test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// labPBX is a Go PBX on pbxHost:5060 in namespace ent that counts, at the
// callee, what the SBC let through. Calls to the user legit are answered
// (200 with SDP, retransmitted until the ACK; the caller's BYE gets 200);
// calls to any other number get 486 (the PBX has no such extension free):
// the SBC still did all of a call's work for them (route, media ports, an
// INVITE to the PBX), which is what a flood to routable numbers costs.
type labPBX struct {
	conn  *net.UDPConn
	port  int // its Contact's: in-dialog requests come back here
	legit string

	mu    sync.Mutex
	calls map[string]*pbxCall // by Call-ID, bounded by maxPBXCalls
	st    pbxStats

	stop chan struct{}
	wg   sync.WaitGroup
}

// pbxStats are the PBX's counts: new INVITEs (Call-IDs) for the legit
// user and for others, and what became of the legit ones.
type pbxStats struct {
	LegitInvites, Answered, Acked, Completed int
	OtherInvites, Refused                    int
	FirstOther, LastOther                    time.Time // when flood calls arrived
	FirstLegit, LastLegit                    time.Time // when legit calls arrived
	// OtherByPrefix counts the other calls by the first byPrefix digits
	// of their number (a flood test puts its source's index there).
	OtherByPrefix map[string]int
}

// byPrefix is how many digits of a called number OtherByPrefix keys on.
const byPrefix = 5

type pbxCall struct {
	res     []byte
	to      *net.UDPAddr
	legit   bool
	acked   bool
	sent    int
	nextTry time.Time
}

const maxPBXCalls = 200000

func startPBX(t *testing.T, legit string) *labPBX {
	t.Helper()
	return startPBXOn(t, 5060, legit)
}

// startPBXOn is a labPBX on pbxHost:port.
func startPBXOn(t *testing.T, port int, legit string) *labPBX {
	t.Helper()
	var c *net.UDPConn
	if err := inNetns("ent", func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(pbxHost), Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	p := &labPBX{conn: c, port: port, legit: legit, calls: map[string]*pbxCall{}, stop: make(chan struct{})}
	p.wg.Add(2)
	go p.read()
	go p.retransmit()
	t.Cleanup(p.close)
	return p
}

func (p *labPBX) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.conn.Close()
	p.wg.Wait()
}

// stats is a copy of the counts so far.
func (p *labPBX) stats() pbxStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.OtherByPrefix = map[string]int{}
	for k, v := range p.st.OtherByPrefix {
		st.OtherByPrefix[k] = v
	}
	return st
}

func (p *labPBX) read() {
	defer p.wg.Done()
	parser := sip.NewParser()
	buf := make([]byte, 65535)
	for {
		n, from, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		m, err := parser.ParseSIP(buf[:n])
		if err != nil {
			continue
		}
		if req, ok := m.(*sip.Request); ok && req.CallID() != nil && req.CSeq() != nil && req.From() != nil && req.To() != nil {
			p.handle(req, from)
		}
	}
}

func (p *labPBX) handle(req *sip.Request, from *net.UDPAddr) {
	id := req.CallID().Value()
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls[id]
	switch req.Method {
	case sip.INVITE:
		if c != nil { // a retransmission: the same answer again
			_, _ = p.conn.WriteToUDP(c.res, c.to)
			return
		}
		c = &pbxCall{to: from, legit: req.To().Address.User == p.legit}
		if c.legit {
			if p.st.LegitInvites == 0 {
				p.st.FirstLegit = time.Now()
			}
			p.st.LastLegit = time.Now()
			p.st.LegitInvites++
			p.st.Answered++
			c.res = pbxResponseAt(p.port, req, 200, "OK", "pbx"+id[:min(len(id), 12)], pbxSDP)
			c.nextTry = time.Now().Add(500 * time.Millisecond)
		} else {
			now := time.Now()
			if p.st.OtherInvites == 0 {
				p.st.FirstOther = now
			}
			p.st.OtherInvites++
			if p.st.OtherByPrefix == nil {
				p.st.OtherByPrefix = map[string]int{}
			}
			u := req.To().Address.User
			p.st.OtherByPrefix[u[:min(len(u), byPrefix)]]++
			p.st.Refused++
			p.st.LastOther = now
			c.res = pbxResponse(req, 486, "Busy Here", "pbxb", "")
			c.acked = true // nothing to retransmit here: the SBC's ACK is hop by hop
		}
		if len(p.calls) < maxPBXCalls {
			p.calls[id] = c
		}
		_, _ = p.conn.WriteToUDP(c.res, from)
	case sip.ACK:
		if c != nil && c.legit && !c.acked {
			c.acked = true
			p.st.Acked++
		}
	case sip.BYE:
		_, _ = p.conn.WriteToUDP(pbxResponse(req, 200, "OK", "", ""), from)
		if c != nil && c.legit {
			p.st.Completed++
			c.legit = false // a retransmitted BYE is not another call
			delete(p.calls, id)
		}
	case sip.CANCEL, sip.OPTIONS:
		_, _ = p.conn.WriteToUDP(pbxResponse(req, 200, "OK", "", ""), from)
	}
}

// retransmit resends unacknowledged 200s (T1 doubling, 7 times).
func (p *labPBX) retransmit() {
	defer p.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-tick.C:
			p.mu.Lock()
			for _, c := range p.calls {
				if c.legit && !c.acked && c.sent < 7 && now.After(c.nextTry) {
					_, _ = p.conn.WriteToUDP(c.res, c.to)
					c.sent++
					c.nextTry = now.Add(time.Duration(500<<c.sent) * time.Millisecond)
				}
			}
			p.mu.Unlock()
		}
	}
}

var pbxSDP = "v=0\r\no=pbx 1 1 IN IP4 " + pbxHost + "\r\ns=-\r\nc=IN IP4 " + pbxHost + "\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

// pbxResponse is a response to req as a UAS sends it.
func pbxResponse(req *sip.Request, code int, reason, toTag, body string) []byte {
	return pbxResponseAt(5060, req, code, reason, toTag, body)
}

// pbxResponseAt is pbxResponse from a PBX on port (its Contact).
func pbxResponseAt(port int, req *sip.Request, code int, reason, toTag, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, v := range req.GetHeaders("Via") {
		fmt.Fprintf(&b, "Via: %s\r\n", v.Value())
	}
	to := req.To().Value()
	if toTag != "" && !strings.Contains(to, "tag=") {
		to += ";tag=" + toTag
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n", req.From().Value(), to, req.CallID().Value(), req.CSeq().Value())
	if code >= 200 && code < 300 && req.Method == sip.INVITE {
		fmt.Fprintf(&b, "Contact: <sip:%s@%s:%d>\r\n", req.To().Address.User, pbxHost, port)
	}
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return []byte(b.String())
}
