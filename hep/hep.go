// Package hep mirrors what the SBC sends and receives to a Homer
// collector: it encodes HEP v3 (the HEP/EEP encapsulation protocol,
// sipcapture's "HEP3 Network Protocol Specification", rev. 37) and sends
// the packets over UDP or TCP from a bounded queue that never blocks the
// caller. It knows no SIP and no calls: the caller names the addresses,
// the protocol type and the correlation ID.
//
// Why it encodes HEP itself: no maintained Go package fits. sipcapture's
// own Go code is applications (heplify, an AGPL capture agent;
// heplify-server, an AGPL collector whose decoder package pulls in its
// config, logging and caches, and which the Go module proxy does not
// serve); sipcapture/hep-go decodes only, with a 16-bit capture ID and no
// correlation ID chunk; the rest found (hepv3 forks, a C# and a Rust
// crate) are unmaintained or not Go. The format is small: a header and
// type-length-value chunks.
//
// The CI test decodes what sbcd sends with sipcapture's hep-js (npm), an
// implementation independent of this one (internal/hepjs, used by
// sbc/hep_test.go and cmd/sbcd/hep_test.go).
package hep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Type is the HEP protocol type chunk (0x000b): what the payload is.
type Type uint8

const (
	TypeSIP  Type = 0x01 // a SIP message as on the wire
	TypeRTCP Type = 0x05 // an RTCP report, as JSON (Homer's convention)
	TypeLog  Type = 0x64 // a log line or JSON document tied to a call (100)
)

// Transport is the IP protocol ID chunk (0x0002) of the mirrored packet.
type Transport uint8

const (
	TCP Transport = 6
	UDP Transport = 17
)

// Chunk types of HEP v3 (vendor 0x0000, generic).
const (
	chunkFamily    = 0x0001 // IP protocol family: 2 IPv4, 10 IPv6
	chunkProto     = 0x0002 // IP protocol ID
	chunkSrc4      = 0x0003
	chunkDst4      = 0x0004
	chunkSrc6      = 0x0005
	chunkDst6      = 0x0006
	chunkSrcPort   = 0x0007
	chunkDstPort   = 0x0008
	chunkTimeSec   = 0x0009
	chunkTimeUsec  = 0x000a
	chunkType      = 0x000b
	chunkCaptureID = 0x000c // 32 bits since rev. 12 (HEP2 had 16)
	chunkAuthKey   = 0x000e
	chunkPayload   = 0x000f
	chunkCorrID    = 0x0011
)

const (
	familyIPv4 = 2
	familyIPv6 = 10
	chunkHead  = 6 // vendor, type, length: each 16 bits
	// MaxPacket is the largest HEP packet: the header's length is 16 bits.
	MaxPacket = 0xffff
)

// ErrTooLarge: the packet would not fit HEP's 16-bit length.
var ErrTooLarge = errors.New("hep: packet larger than 65535 bytes")

// Packet is one mirrored message.
type Packet struct {
	Src, Dst  netip.AddrPort
	Transport Transport
	Time      time.Time
	Type      Type
	CaptureID uint32
	// AuthKey and CorrelationID are sent only when set.
	AuthKey       string
	CorrelationID string
	Payload       []byte
}

// Size is the encoded length of p.
func (p *Packet) Size() int {
	ip := 4
	if p.v6() {
		ip = 16
	}
	n := 6 + // "HEP3" and the total length
		2*(chunkHead+1) + // family, proto
		2*(chunkHead+ip) + // src, dst
		2*(chunkHead+2) + // ports
		2*(chunkHead+4) + // time
		chunkHead + 1 + // type
		chunkHead + 4 + // capture ID
		chunkHead + len(p.Payload)
	if p.AuthKey != "" {
		n += chunkHead + len(p.AuthKey)
	}
	if p.CorrelationID != "" {
		n += chunkHead + len(p.CorrelationID)
	}
	return n
}

// v6 says whether the addresses go as IPv6: when either one is (an IPv4
// address beside an IPv6 one goes IPv4-mapped).
func (p *Packet) v6() bool {
	return p.Src.Addr().Unmap().Is6() || p.Dst.Addr().Unmap().Is6()
}

// Append encodes p after b. The chunk order is the one sipcapture's own
// agents use (family, protocol, addresses, ports, time, type, capture ID,
// auth key, correlation ID), with the payload last: some decoders
// (hep-js) read a chunk's body one header too far, harmless only at the
// end.
func (p *Packet) Append(b []byte) ([]byte, error) {
	size := p.Size()
	if size > MaxPacket {
		return b, fmt.Errorf("%w: %d", ErrTooLarge, size)
	}
	start := len(b)
	b = append(b, "HEP3"...)
	b = binary.BigEndian.AppendUint16(b, uint16(size))
	src, dst := p.Src.Addr().Unmap(), p.Dst.Addr().Unmap()
	if p.v6() {
		b = u8(b, chunkFamily, familyIPv6)
		b = u8(b, chunkProto, uint8(p.Transport))
		b = chunk(b, chunkSrc6, as16(src))
		b = chunk(b, chunkDst6, as16(dst))
	} else {
		b = u8(b, chunkFamily, familyIPv4)
		b = u8(b, chunkProto, uint8(p.Transport))
		b = chunk(b, chunkSrc4, as4(src))
		b = chunk(b, chunkDst4, as4(dst))
	}
	b = u16(b, chunkSrcPort, p.Src.Port())
	b = u16(b, chunkDstPort, p.Dst.Port())
	sec, usec := uint32(0), uint32(0)
	if !p.Time.IsZero() {
		sec, usec = uint32(p.Time.Unix()), uint32(p.Time.Nanosecond()/1000)
	}
	b = u32(b, chunkTimeSec, sec)
	b = u32(b, chunkTimeUsec, usec)
	b = u8(b, chunkType, uint8(p.Type))
	b = u32(b, chunkCaptureID, p.CaptureID)
	if p.AuthKey != "" {
		b = chunk(b, chunkAuthKey, []byte(p.AuthKey))
	}
	if p.CorrelationID != "" {
		b = chunk(b, chunkCorrID, []byte(p.CorrelationID))
	}
	b = chunk(b, chunkPayload, p.Payload)
	if len(b)-start != size {
		return b[:start], fmt.Errorf("hep: encoded %d bytes, sized %d", len(b)-start, size) // a bug here, not input
	}
	return b, nil
}

func as4(a netip.Addr) []byte {
	if !a.Is4() {
		return make([]byte, 4) // unset: 0.0.0.0
	}
	v := a.As4()
	return v[:]
}

func as16(a netip.Addr) []byte {
	if !a.IsValid() {
		return make([]byte, 16) // unset: ::
	}
	v := a.As16() // IPv4 goes mapped
	return v[:]
}

func head(b []byte, typ uint16, n int) []byte {
	b = binary.BigEndian.AppendUint16(b, 0) // vendor: generic
	b = binary.BigEndian.AppendUint16(b, typ)
	return binary.BigEndian.AppendUint16(b, uint16(chunkHead+n))
}

func chunk(b []byte, typ uint16, v []byte) []byte { return append(head(b, typ, len(v)), v...) }
func u8(b []byte, typ uint16, v uint8) []byte     { return append(head(b, typ, 1), v) }
func u16(b []byte, typ uint16, v uint16) []byte {
	return binary.BigEndian.AppendUint16(head(b, typ, 2), v)
}
func u32(b []byte, typ uint16, v uint32) []byte {
	return binary.BigEndian.AppendUint32(head(b, typ, 4), v)
}
