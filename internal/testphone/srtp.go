package testphone

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP mode of RTPEnd: with a send key the end encrypts everything it
// sends (SDES, AES_CM_128_HMAC_SHA1_80); with a receive key it decrypts
// everything it receives, counts what fails to authenticate, and counts
// packets whose bytes on the wire held a plaintext payload it knows (its
// own tool's payloads), which an SRTP leg must never carry.

const testSuite = "AES_CM_128_HMAC_SHA1_80"

// SRTPKey is one SDES key (RFC 4568 a=crypto).
type SRTPKey struct {
	Tag     int
	Suite   string
	KeySalt []byte // master key || master salt
	Params  string // appended to the inline key, e.g. "|2^31"
}

// NewSRTPKey is a fresh random AES_CM_128_HMAC_SHA1_80 key.
func NewSRTPKey(tag int) SRTPKey {
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return SRTPKey{Tag: tag, Suite: testSuite, KeySalt: b}
}

// Inline is the base64 key as it appears after "inline:".
func (k SRTPKey) Inline() string { return base64.StdEncoding.EncodeToString(k.KeySalt) }

// Attr is the a=crypto value.
func (k SRTPKey) Attr() string {
	return fmt.Sprintf("%d %s inline:%s%s", k.Tag, k.Suite, k.Inline(), k.Params)
}

// ParseSRTPKey reads an a=crypto value of the test suite.
func ParseSRTPKey(v string) (SRTPKey, error) {
	f := strings.Fields(v)
	if len(f) < 3 || f[1] != testSuite || !strings.HasPrefix(f[2], "inline:") {
		return SRTPKey{}, fmt.Errorf("a=crypto %q: not an inline %s key", strings.Join(f[:min(2, len(f))], " "), testSuite)
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil {
		return SRTPKey{}, err
	}
	inline, _, _ := strings.Cut(strings.TrimPrefix(f[2], "inline:"), "|")
	b, err := base64.StdEncoding.DecodeString(inline)
	if err != nil || len(b) != 30 {
		return SRTPKey{}, fmt.Errorf("a=crypto tag %d: bad key", tag)
	}
	return SRTPKey{Tag: tag, Suite: f[1], KeySalt: b}, nil
}

func (k SRTPKey) context(decrypt bool) (*srtp.Context, error) {
	var opts []srtp.ContextOption
	if decrypt {
		opts = append(opts, srtp.SRTPReplayProtection(64))
	}
	return srtp.CreateContext(k.KeySalt[:16], k.KeySalt[16:], srtp.ProtectionProfileAes128CmHmacSha1_80, opts...)
}

// SetSendKey makes the end encrypt what it sends from now on (nil: plain).
func (e *RTPEnd) SetSendKey(k *SRTPKey) error {
	var c *srtp.Context
	if k != nil {
		var err error
		if c, err = k.context(false); err != nil {
			return err
		}
	}
	e.sendMu.Lock()
	e.send = c
	e.sendMu.Unlock()
	return nil
}

// SetRecvKey makes the end decrypt what it receives (nil: plain).
func (e *RTPEnd) SetRecvKey(k *SRTPKey) error {
	var c *srtp.Context
	if k != nil {
		var err error
		if c, err = k.context(true); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.recv = c
	e.mu.Unlock()
	return nil
}

// Packet is packet seq of stream ssrc as Send would put it on the wire
// (encrypted under the send key, if any): for replays and tampering.
func (e *RTPEnd) Packet(ssrc uint32, seq uint16) ([]byte, error) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq,
		Timestamp: uint32(seq) * 160, SSRC: ssrc}, Payload: payload(ssrc, seq)}
	b, err := p.Marshal()
	if err != nil {
		return nil, err
	}
	e.sendMu.Lock()
	defer e.sendMu.Unlock()
	if e.send != nil {
		return e.send.EncryptRTP(nil, b, nil)
	}
	return b, nil
}

// SendRaw sends bytes as they are.
func (e *RTPEnd) SendRaw(dst netip.AddrPort, b []byte) error {
	_, err := e.conn.WriteToUDP(b, net.UDPAddrFromAddrPort(dst))
	return err
}

// open turns what arrived into plain RTP; with a receive key it decrypts
// and counts failures and plaintext seen on the wire. Called with mu.
func (e *RTPEnd) open(b []byte) ([]byte, bool) {
	if e.recv == nil {
		return b, true
	}
	var h rtp.Header
	if _, err := h.Unmarshal(b); err == nil && len(b) > 12+32 && bytes.Contains(b, payload(h.SSRC, h.SequenceNumber)[:32]) {
		e.clear++
	}
	out, err := e.recv.DecryptRTP(nil, b, nil)
	if err != nil {
		e.authFailed++
		return nil, false
	}
	return out, true
}

// AuthFailed counts received packets that did not decrypt.
func (e *RTPEnd) AuthFailed() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.authFailed
}

// ClearSeen counts received packets whose wire bytes carried a plaintext
// payload while the end expected SRTP.
func (e *RTPEnd) ClearSeen() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clear
}

// Payload is the payload RTPEnd sends as packet seq of stream ssrc, for
// tests that look for it on the wire.
func Payload(ssrc uint32, seq uint16) []byte { return payload(ssrc, seq) }
