package mediarelay

// SDES (RFC 4568): a=crypto lines, parsed from the network and written by
// the SBC with its own keys. Key material never appears in an error, a log
// line or a String(): CryptoAttr formats as "tag suite" only.

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/pion/srtp/v3"
)

// ErrSRTPRefused: the SDP's media security cannot be met under the realm's
// SRTP policy, or its a=crypto lines are malformed or unsupported. The SIP
// side answers 488.
var ErrSRTPRefused = errors.New("SRTP refused")

// SRTPMode is a realm's media security.
type SRTPMode int

const (
	// SRTPOff: plain RTP only. An RTP/SAVP-only offer is refused (488); a
	// best-effort offer (a=crypto on RTP/AVP) is answered in the clear.
	SRTPOff SRTPMode = iota
	// SRTPOptional: SRTP when the peer offers it (RTP/SAVP or a=crypto on
	// RTP/AVP); offers into the realm are best-effort (RTP/AVP + a=crypto).
	SRTPOptional
	// SRTPRequired: SRTP only. Offers without a usable a=crypto are refused;
	// offers into the realm are RTP/SAVP.
	SRTPRequired
)

func (m SRTPMode) String() string {
	switch m {
	case SRTPOptional:
		return "optional"
	case SRTPRequired:
		return "required"
	}
	return "off"
}

// ParseSRTPMode reads off, optional or required.
func ParseSRTPMode(s string) (SRTPMode, error) {
	switch s {
	case "", "off":
		return SRTPOff, nil
	case "optional":
		return SRTPOptional, nil
	case "required":
		return SRTPRequired, nil
	}
	return SRTPOff, fmt.Errorf("%q must be off, optional or required", s)
}

// SRTPPolicy is a realm's SRTP setting: the mode and the SDES suites it
// accepts and offers, in preference order (nil: DefaultSuites).
type SRTPPolicy struct {
	Mode   SRTPMode
	Suites []string
}

func (p SRTPPolicy) suites() []string {
	if len(p.Suites) == 0 {
		return DefaultSuites
	}
	return p.Suites
}

// DefaultSuites is the preference order when a realm names none.
var DefaultSuites = []string{"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM", "AEAD_AES_256_GCM"}

// suiteProfiles are the SDES suites pion/srtp implements (RFC 4568, 6188, 7714).
var suiteProfiles = map[string]srtp.ProtectionProfile{
	"AES_CM_128_HMAC_SHA1_80": srtp.ProtectionProfileAes128CmHmacSha1_80,
	"AES_CM_128_HMAC_SHA1_32": srtp.ProtectionProfileAes128CmHmacSha1_32,
	"AES_256_CM_HMAC_SHA1_80": srtp.ProtectionProfileAes256CmHmacSha1_80,
	"AES_256_CM_HMAC_SHA1_32": srtp.ProtectionProfileAes256CmHmacSha1_32,
	"AEAD_AES_128_GCM":        srtp.ProtectionProfileAeadAes128Gcm,
	"AEAD_AES_256_GCM":        srtp.ProtectionProfileAeadAes256Gcm,
}

// SuiteSupported says whether the SBC can relay a crypto suite.
func SuiteSupported(name string) bool {
	_, ok := suiteProfiles[name]
	return ok
}

// NewSRTPPolicy converts a realm's SRTP setting as the config names it (a
// mode and suite names) to mediarelay's form. It fails on a mode or suite
// this package cannot serve, so that sbcd refuses to start rather than
// drop a configured suite.
func NewSRTPPolicy(mode string, suites []string) (SRTPPolicy, error) {
	m, err := ParseSRTPMode(mode)
	if err != nil {
		return SRTPPolicy{}, err
	}
	for _, name := range suites {
		if !SuiteSupported(name) {
			return SRTPPolicy{}, fmt.Errorf("crypto suite %q is not supported", name)
		}
	}
	return SRTPPolicy{Mode: m, Suites: suites}, nil
}

// Limits on a=crypto input.
const (
	maxCryptoTag   = 999999999 // 1*9DIGIT
	maxMKILen      = 4         // bytes; longer MKIs are refused
	maxLifetimeLog = 48        // 2^48 packets: RFC 3711's SRTP limit
)

// CryptoAttr is one a=crypto line. Its key and salt never leave the
// package in text except inside an SDP the SBC writes for that leg.
type CryptoAttr struct {
	Tag      int
	Suite    string
	Profile  srtp.ProtectionProfile
	Key      []byte // master key
	Salt     []byte // master salt
	MKI      []byte // nil: no MKI
	Lifetime uint64 // packets; 0 when not given
}

// String names the line without its key.
func (c CryptoAttr) String() string { return strconv.Itoa(c.Tag) + " " + c.Suite }

// GoString keeps %#v from printing the key.
func (c CryptoAttr) GoString() string { return "CryptoAttr{" + c.String() + "}" }

// LogValue keeps slog from printing the key.
func (c CryptoAttr) LogValue() slog.Value { return slog.StringValue(c.String()) }

// sameKey says whether two attributes carry the same keying (the tag may
// differ between offers).
func (c CryptoAttr) sameKey(o CryptoAttr) bool {
	return c.Suite == o.Suite && string(c.Key) == string(o.Key) && string(c.Salt) == string(o.Salt) && string(c.MKI) == string(o.MKI)
}

// value is the a=crypto value (after "crypto:") the SBC writes.
func (c CryptoAttr) value() string {
	kb := make([]byte, 0, len(c.Key)+len(c.Salt))
	kb = append(append(kb, c.Key...), c.Salt...)
	return strconv.Itoa(c.Tag) + " " + c.Suite + " inline:" + base64.StdEncoding.EncodeToString(kb)
}

// shown quotes a field for an error only when it looks like a name (upper
// case, digits, underscore: suites, session parameters, tags); anything
// else may be a misplaced key and is not repeated.
func shown(s string) string {
	if len(s) > 40 {
		return "(not shown)"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return "(not shown)"
		}
	}
	return strconv.Quote(s)
}

func refusef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSRTPRefused, fmt.Sprintf(format, args...))
}

// newCrypto makes the SBC's own fresh key for one suite.
func newCrypto(tag int, suite string) (CryptoAttr, error) {
	p, ok := suiteProfiles[suite]
	if !ok {
		return CryptoAttr{}, fmt.Errorf("mediarelay: unsupported SRTP suite %q", suite)
	}
	kl, _ := p.KeyLen()
	sl, _ := p.SaltLen()
	b := make([]byte, kl+sl)
	if _, err := rand.Read(b); err != nil {
		return CryptoAttr{}, fmt.Errorf("mediarelay: SRTP key: %w", err)
	}
	return CryptoAttr{Tag: tag, Suite: suite, Profile: p, Key: b[:kl:kl], Salt: b[kl:]}, nil
}

// ParseCrypto parses an a=crypto value (what follows "crypto:"):
//
//	<tag> <suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>] [<session params>]
//
// Refused, each with an error wrapping ErrSRTPRefused that names the tag and
// the reason (never the key): a malformed line, an unknown suite, a key of
// the wrong length, more than one key, an MKI longer than 4 bytes, a
// lifetime beyond 2^48, and any session parameter but WSH (KDR=0 is
// accepted, being the default).
func ParseCrypto(val string) (CryptoAttr, error) {
	var c CryptoAttr
	f := strings.Fields(val)
	if len(f) < 3 {
		return c, refusef("a=crypto needs a tag, a suite and key parameters")
	}
	tag, ok := parseUint(f[0], 9)
	if !ok || tag > maxCryptoTag {
		return c, refusef("a=crypto tag %s is not 1-9 digits", shown(f[0]))
	}
	c.Tag = tag
	p, ok := suiteProfiles[f[1]]
	if !ok {
		return c, refusef("a=crypto tag %d: unsupported suite %s", tag, shown(f[1]))
	}
	c.Suite, c.Profile = f[1], p
	if strings.Contains(f[2], ";") {
		return c, refusef("a=crypto tag %d: more than one key is not supported", tag)
	}
	if err := parseKeyParam(&c, f[2]); err != nil {
		return c, err
	}
	for _, sp := range f[3:] {
		if err := checkSessionParam(tag, sp); err != nil {
			return c, err
		}
	}
	return c, nil
}

func parseKeyParam(c *CryptoAttr, kp string) error {
	method, info, ok := strings.Cut(kp, ":")
	if !ok || !strings.EqualFold(method, "inline") {
		return refusef("a=crypto tag %d: key method is not inline", c.Tag)
	}
	parts := strings.Split(info, "|")
	if len(parts) > 3 {
		return refusef("a=crypto tag %d: too many key parameters", c.Tag)
	}
	kl, _ := c.Profile.KeyLen()
	sl, _ := c.Profile.SaltLen()
	raw, err := decodeKey(parts[0], kl+sl)
	if err != nil {
		return refusef("a=crypto tag %d: inline key: %v", c.Tag, err)
	}
	c.Key, c.Salt = raw[:kl:kl], raw[kl:]
	seenLife, seenMKI := false, false
	for _, p := range parts[1:] {
		if strings.Contains(p, ":") {
			if seenMKI {
				return refusef("a=crypto tag %d: two MKI parameters", c.Tag)
			}
			seenMKI = true
			mki, err := parseMKI(p)
			if err != nil {
				return refusef("a=crypto tag %d: %v", c.Tag, err)
			}
			c.MKI = mki
			continue
		}
		if seenLife || seenMKI {
			return refusef("a=crypto tag %d: lifetime must come once, before the MKI", c.Tag)
		}
		seenLife = true
		lt, err := parseLifetime(p)
		if err != nil {
			return refusef("a=crypto tag %d: %v", c.Tag, err)
		}
		c.Lifetime = lt
	}
	return nil
}

// decodeKey reads base64 key||salt of exactly n bytes; padding is
// optional (some phones leave it out).
func decodeKey(s string, n int) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	if enc.DecodedLen(len(s)) > 2*n+4 {
		return nil, fmt.Errorf("%d characters is too long for %d bytes", len(s), n)
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64")
	}
	if len(b) != n {
		return nil, fmt.Errorf("%d bytes of key and salt, the suite needs %d", len(b), n)
	}
	return b, nil
}

// parseLifetime reads "2^N" or a decimal packet count.
func parseLifetime(s string) (uint64, error) {
	if e, ok := strings.CutPrefix(s, "2^"); ok {
		n, ok := parseUint(e, 2)
		if !ok || n < 1 || n > maxLifetimeLog {
			return 0, fmt.Errorf("lifetime %s is not 2^1 to 2^%d", shown(s), maxLifetimeLog)
		}
		return 1 << n, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || n > 1<<maxLifetimeLog || len(s) > 15 {
		return 0, fmt.Errorf("lifetime %s is not 1 to 2^%d packets", shown(s), maxLifetimeLog)
	}
	return n, nil
}

// parseMKI reads "<value>:<length>" into a big-endian MKI of length bytes.
func parseMKI(s string) ([]byte, error) {
	vs, ls, _ := strings.Cut(s, ":")
	l, ok := parseUint(ls, 3)
	if !ok || l < 1 || l > 128 {
		return nil, fmt.Errorf("MKI length %s is not 1-128", shown(ls))
	}
	if l > maxMKILen {
		return nil, fmt.Errorf("MKI of %d bytes is not supported (at most %d)", l, maxMKILen)
	}
	v, err := strconv.ParseUint(vs, 10, 64)
	if err != nil || len(vs) > 10 || v >= 1<<(8*l) {
		return nil, fmt.Errorf("MKI value %s does not fit %d bytes", shown(vs), l)
	}
	mki := make([]byte, l)
	for i := l - 1; i >= 0; i-- {
		mki[i] = byte(v)
		v >>= 8
	}
	return mki, nil
}

// checkSessionParam accepts WSH (a window size hint; the SBC keeps a
// 64-packet replay window) and KDR=0; everything else changes the
// transform in ways the relay does not implement.
func checkSessionParam(tag int, sp string) error {
	k, v, _ := strings.Cut(sp, "=")
	switch strings.ToUpper(k) {
	case "WSH":
		if n, ok := parseUint(v, 9); ok && n >= 64 {
			return nil
		}
		return refusef("a=crypto tag %d: bad WSH %s", tag, shown(v))
	case "KDR":
		if v == "0" {
			return nil
		}
		return refusef("a=crypto tag %d: key derivation rate KDR=%s is not supported", tag, shown(v))
	}
	return refusef("a=crypto tag %d: session parameter %s is not supported", tag, shown(k))
}

// pickCrypto chooses, among an offer's a=crypto values, the one whose
// suite comes first in the policy's preference order. When none is usable
// the error says why (the first refusal, or that no suite is allowed).
func pickCrypto(vals []string, pol SRTPPolicy) (CryptoAttr, error) {
	var first error
	best, bestRank := CryptoAttr{}, -1
	allowed := pol.suites()
	for _, v := range vals {
		c, err := ParseCrypto(v)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		for r, s := range allowed {
			if s == c.Suite && (bestRank < 0 || r < bestRank) {
				best, bestRank = c, r
			}
		}
	}
	switch {
	case bestRank >= 0:
		return best, nil
	case len(vals) == 0:
		return best, refusef("no a=crypto line")
	case first != nil:
		return best, first
	}
	return best, refusef("no offered crypto suite is allowed (allowed: %s)", strings.Join(allowed, ", "))
}
