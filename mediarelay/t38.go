package mediarelay

// Media lines that do not carry RTP: T.38 fax over UDPTL (RFC 3362,
// ITU-T T.38 annex D), and whatever else a peer sends on a media port.
//
// A re-INVITE that moves a call to m=image udptl t38 keeps the media line's
// ports, so the stream, its latched sources and its kernel flows stay; only
// the payload changes. The relay then forwards each datagram as it came:
// no RTP header is parsed (a UDPTL sequence number may look like RTP
// version 2), no RTP statistics are kept, and the packet still counts as
// media activity for the media timeout. Latching is the same as for RTP:
// only the SDP address (or, on a NAT realm, the first source inside the
// latch window) is accepted, so forwarding opaque payloads gives a hijacker
// nothing more. The kernel path matches on addresses and ports only, so it
// carries UDPTL once both sides have latched.
//
// On an RTP line, a datagram that is not RTP (a STUN keepalive, a gateway
// that switched to UDPTL without telling) is forwarded too rather than
// dropped, unless the leg is SRTP: there it failed authentication already.

import "strings"

// rtpProto reports whether an m= proto carries RTP ("RTP/AVP",
// "UDP/TLS/RTP/SAVPF", ...). "udptl", "TCP", "UDP/DTLS/SCTP" do not.
func rtpProto(p string) bool {
	return strings.Contains(strings.ToUpper(p), "RTP/")
}

// SetOpaque marks the stream as carrying something other than RTP (T.38
// UDPTL): the relay forwards its datagrams without reading them as RTP.
// The anchor sets it from each SDP's m= proto, so a switch back to audio
// clears it.
func (s *Stream) SetOpaque(on bool) { s.opaque.Store(on) }

// Opaque reports what SetOpaque last set.
func (s *Stream) Opaque() bool { return s.opaque.Load() }
