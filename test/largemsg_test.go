package test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Large messages (RFC 3261 18.1.1) across the lab, whose veths have a
// 1500-byte MTU: SIPp's INVITE (an SRTP offer with audio and video, four
// crypto lines each) is about 1,600 bytes on each leg, and so is the
// callee's 200. Toward a UDP-only callee the SBC's TCP attempt is refused
// and the INVITE goes as IP fragments, which the callee reassembles and
// answers; toward a callee that speaks TCP on the same port it goes over
// TCP. The 200 goes back to the caller over UDP, fragmented. Judged at the
// SIPp ends (each checks the last line of the SDP it got and exits 0 only
// when the call completed) and on the wires (fragments, transports, sizes).
func TestLargeMessages(t *testing.T) {
	needLab(t)
	y := fmt.Sprintf(`realms:
  - {name: carrier, listen: "%s:5060", transports: [udp, tcp]}
  - {name: enterprise, listen: "%s:5060", transports: [udp, tcp]}
media: {enabled: false} # signaling only: SIPp's SDP reaches the callee as sent
routes:
  - {name: to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"], target_timeout: 3s}
`, sbcExt, sbcInt, pbxHost)
	cfg := filepath.Join(t.TempDir(), "sbc.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSBCD(t, cfg)
	const frags = "udp port 5060 or tcp port 5060 or (ip[6:2] & 0x1fff != 0)" // and the fragments after the first
	for _, tc := range []struct {
		name string
		tcp  bool
	}{
		{"UDP-only callee", false},
		{"TCP-capable callee", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			carWire := startCaptureFilter(t, "car", "car0", frags)
			entWire := startCaptureFilter(t, "ent", "ent0", frags)
			calleeArgs := pbxArgs("-m", "1")
			if tc.tcp {
				calleeArgs = append(calleeArgs, "-t", "t1")
			}
			srv := startSIPp(t, "ent", "uas_large.xml", calleeArgs...)
			if tc.tcp {
				waitTCPListen(t, "ent", pbxHost, 5060)
			} else {
				waitUDPListen(t, "ent", pbxHost, 5060)
			}
			cl := startSIPp(t, "car", "uac_large.xml", carrierArgs(sbcExt+":5060", "-m", "1", "-s", "1000")...)
			cl.wait(t, 30*time.Second)
			srv.wait(t, 30*time.Second)
			s.waitIdle(t)
			car, ent := readPackets(t, carWire), readPackets(t, entWire)

			// The 200 toward the caller: over UDP, fragmented.
			ok, n := fragmentedUDP(car, sbcExt, carrierHost, "SIP/2.0 200 OK")
			if ok <= 1300 || n < 2 {
				t.Errorf("200 OK to the caller: %d bytes in %d fragments, want over 1300 bytes in 2 or more", ok, n)
			}
			inv, in := fragmentedUDP(car, carrierHost, sbcExt, "INVITE ")
			t.Logf("carrier wire: INVITE %d bytes (%d fragments), 200 OK %d bytes (%d fragments), UDP", inv, in, ok, n)

			udpInv, un := fragmentedUDP(ent, sbcInt, pbxHost, "INVITE ")
			tcpInv := tcpMessage(ent, sbcInt, pbxHost, "INVITE ")
			if tc.tcp {
				if tcpInv <= 1300 || udpInv != 0 {
					t.Errorf("INVITE to the callee: %d bytes over TCP, %d over UDP; want it over TCP only, over 1300 bytes", tcpInv, udpInv)
				}
				t.Logf("enterprise wire: INVITE %d bytes over TCP", tcpInv)
				return
			}
			if udpInv <= 1300 || un < 2 || tcpInv != 0 {
				t.Errorf("INVITE to the callee: %d bytes in %d UDP fragments, %d over TCP; want over 1300 bytes in 2 or more fragments", udpInv, un, tcpInv)
			}
			t.Logf("enterprise wire: INVITE %d bytes over UDP in %d fragments", udpInv, un)
		})
	}
}

// ipPacket is one IPv4 packet of a capture: a whole datagram's first
// fragment carries the transport header, later ones only data.
type ipPacket struct {
	src, dst netip.Addr
	proto    byte
	id       uint16
	more     bool // MF: more fragments follow
	offset   int  // fragment offset in bytes
	data     []byte
}

// readPackets stops a capture and returns its IPv4 packets.
func readPackets(t *testing.T, c *capture) []ipPacket {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the last packets land
	c.halt(syscall.SIGINT)
	b, err := os.ReadFile(c.file)
	if err != nil {
		t.Fatalf("capture %s: %v (tshark: %v %s)", c.file, err, c.err, c.out)
	}
	var out []ipPacket
	for _, frame := range pcapFrames(b) {
		if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || total < ihl || len(ip) < total {
			continue
		}
		fl := binary.BigEndian.Uint16(ip[6:])
		src, _ := netip.AddrFromSlice(ip[12:16])
		dst, _ := netip.AddrFromSlice(ip[16:20])
		out = append(out, ipPacket{src: src, dst: dst, proto: ip[9], id: binary.BigEndian.Uint16(ip[4:]),
			more: fl&0x2000 != 0, offset: int(fl&0x1fff) * 8, data: ip[ihl:total]})
	}
	return out
}

// pcapFrames splits a classic pcap file into its frames.
func pcapFrames(b []byte) [][]byte {
	if len(b) < 24 {
		return nil
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if m := binary.LittleEndian.Uint32(b); m == 0xd4c3b2a1 || m == 0x4d3cb2a1 {
		bo = binary.BigEndian
	}
	var out [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		out = append(out, b[off:off+n])
		off += n
	}
	return out
}

// fragmentedUDP finds the first UDP datagram from src to dst whose payload
// starts with prefix and returns its payload size (from the UDP header)
// and the number of IP packets it crossed the wire in; 0, 0 when none.
func fragmentedUDP(ps []ipPacket, src, dst, prefix string) (size, packets int) {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	for _, p := range ps {
		if p.src != s || p.dst != d || p.proto != 17 || p.offset != 0 || len(p.data) < 8 || !bytes.HasPrefix(p.data[8:], []byte(prefix)) {
			continue
		}
		size = int(binary.BigEndian.Uint16(p.data[4:])) - 8
		for _, q := range ps {
			if q.src == s && q.dst == d && q.proto == 17 && q.id == p.id {
				packets++
			}
		}
		return size, packets
	}
	return 0, 0
}

var contentLength = regexp.MustCompile(`(?i)\r\n(?:Content-Length|l)\s*:\s*(\d+)`)

// tcpMessage finds a SIP message starting with prefix in the TCP bytes
// from src to dst (the lab's one connection, segments in capture order)
// and returns its size; 0 when there is none.
func tcpMessage(ps []ipPacket, src, dst, prefix string) int {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	var stream []byte
	for _, p := range ps {
		if p.src != s || p.dst != d || p.proto != 6 || len(p.data) < 20 {
			continue
		}
		if doff := int(p.data[12]>>4) * 4; len(p.data) > doff {
			stream = append(stream, p.data[doff:]...)
		}
	}
	i := bytes.Index(stream, []byte(prefix))
	if i < 0 {
		return 0
	}
	msg := stream[i:]
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		return 0
	}
	m := contentLength.FindSubmatch(msg[:end+2])
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return end + 4 + n
}
