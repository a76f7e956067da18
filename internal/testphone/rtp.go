package testphone

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// RTPEnd is a phone's media socket: it sends G.711-sized RTP packets whose
// payload is derived from SSRC and sequence number, and records every
// packet it receives, so a test can prove each arrived once, in order and
// intact, and from whom.
type RTPEnd struct {
	conn  *net.UDPConn
	mu    sync.Mutex
	got   map[uint32][]uint16       // SSRC -> sequence numbers in arrival order
	from  map[uint32]map[string]int // SSRC -> source address -> packets
	bad   int                       // packets that were not RTP or whose payload was wrong
	udptl []uint16                  // T.38 UDPTL sequence numbers in arrival order (udptl.go)
	done  chan struct{}

	// SRTP mode (srtp.go): nil contexts mean plain RTP.
	recv       *srtp.Context // under mu
	authFailed int
	clear      int
	sendMu     sync.Mutex
	send       *srtp.Context
}

// NewRTPEnd starts recording on a socket the caller opened; it closes with
// the test.
func NewRTPEnd(t testing.TB, c *net.UDPConn) *RTPEnd {
	e := &RTPEnd{conn: c, got: map[uint32][]uint16{}, from: map[uint32]map[string]int{}, done: make(chan struct{})}
	_ = c.SetReadBuffer(4 << 20)
	go e.read()
	t.Cleanup(func() { c.Close(); <-e.done })
	return e
}

// Addr is the socket's address.
func (e *RTPEnd) Addr() netip.AddrPort {
	return e.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func payload(ssrc uint32, seq uint16) []byte {
	p := make([]byte, 160)
	for i := range p {
		p[i] = byte(uint32(i) + uint32(seq)*7 + ssrc)
	}
	return p
}

func (e *RTPEnd) read() {
	defer close(e.done)
	buf := make([]byte, 2048)
	var pkt rtp.Packet
	for {
		n, src, err := e.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		e.mu.Lock()
		if seq, ok := parseUDPTL(buf[:n]); ok && e.recv == nil {
			e.udptl = append(e.udptl, seq)
			e.mu.Unlock()
			continue
		}
		b, ok := e.open(buf[:n])
		if !ok {
			e.mu.Unlock()
			continue
		}
		if pkt.Unmarshal(b) != nil || string(pkt.Payload) != string(payload(pkt.SSRC, pkt.SequenceNumber)) {
			e.bad++
		} else {
			e.got[pkt.SSRC] = append(e.got[pkt.SSRC], pkt.SequenceNumber)
			if e.from[pkt.SSRC] == nil {
				e.from[pkt.SSRC] = map[string]int{}
			}
			e.from[pkt.SSRC][src.String()]++
		}
		e.mu.Unlock()
	}
}

// SendOne sends packet seq of stream ssrc to dst.
func (e *RTPEnd) SendOne(dst *net.UDPAddr, ssrc uint32, seq uint16) error {
	b, err := e.Packet(ssrc, seq)
	if err != nil {
		return err
	}
	if _, err := e.conn.WriteToUDP(b, dst); err != nil {
		return fmt.Errorf("send to %v: %w", dst, err)
	}
	return nil
}

// Send sends n packets of stream ssrc to dst, sequence numbers from first,
// every interval (20 ms is real G.711 pacing).
func (e *RTPEnd) Send(dst netip.AddrPort, ssrc uint32, first uint16, n int, interval time.Duration) error {
	ua := net.UDPAddrFromAddrPort(dst)
	next := time.Now()
	for i := 0; i < n; i++ {
		if err := e.SendOne(ua, ssrc, first+uint16(i)); err != nil {
			return err
		}
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
	return nil
}

// Received is the sequence numbers of stream ssrc in arrival order.
func (e *RTPEnd) Received(ssrc uint32) []uint16 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]uint16(nil), e.got[ssrc]...)
}

// Sources is where stream ssrc's packets came from, with counts.
func (e *RTPEnd) Sources(ssrc uint32) map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for k, v := range e.from[ssrc] {
		out[k] = v
	}
	return out
}

// Bad counts packets that were not this tool's RTP or were corrupted.
func (e *RTPEnd) Bad() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.bad
}

// CheckStream reports whether stream ssrc arrived as n packets from first,
// each once and in order.
func (e *RTPEnd) CheckStream(ssrc uint32, first uint16, n int) error {
	got := e.Received(ssrc)
	if len(got) != n {
		return fmt.Errorf("stream %#x: %d packets arrived, want %d", ssrc, len(got), n)
	}
	for i, s := range got {
		if s != first+uint16(i) {
			return fmt.Errorf("stream %#x: packet %d has sequence %d, want %d (lost, duplicated or reordered)", ssrc, i, s, first+uint16(i))
		}
	}
	return nil
}

// WaitFor waits until stream ssrc has n packets or d passes.
func (e *RTPEnd) WaitFor(ssrc uint32, n int, d time.Duration) {
	deadline := time.Now().Add(d)
	for len(e.Received(ssrc)) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}
