package policy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/icholy/digest"
)

// Digest is the server side of SIP digest authentication (RFC 3261 22.4,
// RFC 8760 for SHA-256): it issues challenges and verifies answers against
// configured users. Nonces are stateless: a timestamp and an HMAC over it,
// the source address and the realm, so a nonce is only good from the
// address it was sent to (a correct answer also proves the source is not
// spoofed) and only for the TTL. Replays within the TTL from the same
// address are not detected (no nonce-count state).
type Digest struct {
	realm      string
	algorithms []string
	users      map[string]string
	ttl        time.Duration
	secret     [32]byte
}

// NewDigest makes a verifier. algorithms are "MD5" and/or "SHA-256", in
// the order offered.
func NewDigest(realm string, algorithms []string, users map[string]string, ttl time.Duration) *Digest {
	d := &Digest{realm: realm, algorithms: algorithms, users: users, ttl: ttl}
	_, _ = rand.Read(d.secret[:])
	return d
}

// Realm is the digest realm.
func (d *Digest) Realm() string { return d.realm }

func (d *Digest) mac(ts []byte, src netip.Addr) []byte {
	m := hmac.New(sha256.New, d.secret[:])
	m.Write(ts)
	b, _ := src.Unmap().MarshalBinary()
	m.Write(b)
	m.Write([]byte(d.realm))
	return m.Sum(nil)[:16]
}

// Nonce makes a nonce for src at now.
func (d *Digest) Nonce(src netip.Addr, now time.Time) string {
	var raw [8 + 16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixNano()))
	copy(raw[8:], d.mac(raw[:8], src))
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// checkNonce returns nil, ErrStaleNonce (ours, expired) or
// ErrBadCredentials (not ours, or for another address).
func (d *Digest) checkNonce(n string, src netip.Addr, now time.Time) error {
	raw, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(raw) != 24 {
		return ErrBadCredentials
	}
	if !hmac.Equal(raw[8:], d.mac(raw[:8], src)) {
		return ErrBadCredentials
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(raw[:8])))
	if age := now.Sub(issued); age < -time.Minute || age > d.ttl {
		return ErrStaleNonce
	}
	return nil
}

// Challenges returns the WWW-Authenticate (or Proxy-Authenticate) values
// for src: one per algorithm, qop=auth.
func (d *Digest) Challenges(src netip.Addr, now time.Time, stale bool) []string {
	nonce := d.Nonce(src, now)
	out := make([]string, 0, len(d.algorithms))
	for _, a := range d.algorithms {
		c := digest.Challenge{Realm: d.realm, Nonce: nonce, Algorithm: a, QOP: []string{"auth"}, Stale: stale}
		out = append(out, c.String())
	}
	return out
}

// Verify checks an Authorization header value for a request with method
// from src. It returns the user on success; ErrNoCredentials when the
// header is not a digest answer for this realm, ErrStaleNonce when only
// the nonce's time ran out, ErrBadCredentials otherwise.
func (d *Digest) Verify(header, method string, src netip.Addr, now time.Time) (string, error) {
	if !digest.IsDigest(header) {
		return "", ErrNoCredentials
	}
	cred, err := digest.ParseCredentials(header)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	if cred.Realm != d.realm {
		return "", ErrNoCredentials
	}
	alg := strings.ToUpper(cred.Algorithm)
	if alg == "" {
		alg = "MD5"
	}
	if !slices.Contains(d.algorithms, alg) || cred.Userhash {
		return "", fmt.Errorf("%w: algorithm %q not offered", ErrBadCredentials, cred.Algorithm)
	}
	pw, ok := d.users[cred.Username]
	if !ok {
		return "", fmt.Errorf("%w: unknown user", ErrBadCredentials)
	}
	if err := d.checkNonce(cred.Nonce, src, now); err != nil {
		return "", err
	}
	chal := &digest.Challenge{Realm: d.realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, Opaque: cred.Opaque}
	switch cred.QOP {
	case "":
	case "auth":
		chal.QOP = []string{"auth"}
		if cred.Cnonce == "" || cred.Nc == 0 {
			return "", fmt.Errorf("%w: qop=auth without cnonce or nc", ErrBadCredentials)
		}
	default:
		return "", fmt.Errorf("%w: qop %q not offered", ErrBadCredentials, cred.QOP)
	}
	want, err := digest.Digest(chal, digest.Options{
		Method: method, URI: cred.URI, Username: cred.Username, Password: pw,
		Cnonce: cred.Cnonce, Count: cred.Nc,
	})
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadCredentials, err)
	}
	if !hmac.Equal([]byte(strings.ToLower(cred.Response)), []byte(want.Response)) {
		return "", fmt.Errorf("%w: wrong response", ErrBadCredentials)
	}
	return cred.Username, nil
}
