package testphone

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// T.38 fax over UDPTL (ITU-T T.38 annex D) on an RTPEnd's socket: a fax
// gateway after the re-INVITE to m=image udptl t38 sends these on the same
// port it used for RTP. A datagram is the 16-bit sequence number, the
// primary IFP packet as a length-prefixed open type, and an empty
// redundancy list. The IFP carries a fixture derived from the sequence
// number, so a receiver proves each arrived intact. Below 0x4000 the first
// byte reads as version 0 (not RTP); from 0x8000 to 0xbfff as RTP
// version 2.

var udptlMark = []byte{0xc0, 0x01, 'T', '3', '8'} // t30-data, then the fixture

// UDPTLPacket builds datagram seq.
func UDPTLPacket(seq uint16) []byte {
	ifp := append(append([]byte(nil), udptlMark...), byte(seq>>8), byte(seq))
	for i := range 40 {
		ifp = append(ifp, byte(i)+byte(seq)*3)
	}
	b := binary.BigEndian.AppendUint16(nil, seq)
	b = append(b, byte(len(ifp)))
	b = append(b, ifp...)
	return append(b, 0x00, 0x00) // error recovery: redundancy, no secondary IFPs
}

// parseUDPTL returns the sequence number of a datagram UDPTLPacket built.
func parseUDPTL(b []byte) (uint16, bool) {
	if len(b) < 3+len(udptlMark) || !bytes.Equal(b[3:3+len(udptlMark)], udptlMark) {
		return 0, false
	}
	seq := binary.BigEndian.Uint16(b)
	return seq, bytes.Equal(b, UDPTLPacket(seq))
}

// SendUDPTL sends n UDPTL datagrams to dst, sequence numbers from first,
// every interval.
func (e *RTPEnd) SendUDPTL(dst netip.AddrPort, first uint16, n int, interval time.Duration) error {
	ua := net.UDPAddrFromAddrPort(dst)
	next := time.Now()
	for i := range n {
		if _, err := e.conn.WriteToUDP(UDPTLPacket(first+uint16(i)), ua); err != nil {
			return fmt.Errorf("send UDPTL to %v: %w", dst, err)
		}
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
	return nil
}

// ReceivedUDPTL is the sequence numbers of the UDPTL datagrams received
// intact, in arrival order.
func (e *RTPEnd) ReceivedUDPTL() []uint16 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]uint16(nil), e.udptl...)
}

// CheckUDPTL reports whether n UDPTL datagrams from first arrived, each
// once and in order.
func (e *RTPEnd) CheckUDPTL(first uint16, n int) error {
	got := e.ReceivedUDPTL()
	if len(got) != n {
		return fmt.Errorf("UDPTL: %d datagrams arrived, want %d", len(got), n)
	}
	for i, s := range got {
		if s != first+uint16(i) {
			return fmt.Errorf("UDPTL: datagram %d has sequence %d, want %d", i, s, first+uint16(i))
		}
	}
	return nil
}

// ResetUDPTL forgets the UDPTL datagrams received so far.
func (e *RTPEnd) ResetUDPTL() {
	e.mu.Lock()
	e.udptl = nil
	e.mu.Unlock()
}
