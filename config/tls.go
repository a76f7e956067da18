package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// RealmTLS is a realm's SIP over TLS: the listener's certificate, client
// certificates asked of peers, and how the SBC verifies the peers it dials
// (route targets with ;transport=tls, and in-dialog requests to a TLS
// peer's Contact). TLS 1.2 is the minimum, always.
type RealmTLS struct {
	// Port is the TLS listening port on the realm's listen IP; the listen
	// port + 1 by default (5061 for 5060). Used only when "tls" is among
	// the realm's transports.
	Port int `yaml:"port"`
	// Cert and Key are PEM files: the certificate chain the listener
	// serves (and presents as a client certificate when a peer asks for
	// one), and its private key. Required when the realm listens on TLS.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ClientAuth is none, request (ask; verify against ClientCA when one is
	// given) or require (a certificate signed by ClientCA is mandatory).
	ClientAuth string `yaml:"client_auth"`
	ClientCA   string `yaml:"client_ca"`
	// ServerCA is the PEM bundle that verifies the certificates of TLS
	// peers the SBC dials; the system roots when empty.
	ServerCA string `yaml:"server_ca"`
	// InsecureSkipVerifyLabOnly turns server verification off for dialed
	// peers. For a lab with throwaway certificates, never for a real trunk:
	// anyone on the path can then read and change the calls.
	InsecureSkipVerifyLabOnly bool `yaml:"insecure_skip_verify_lab_only"`
	// ReloadInterval is how often the cert and key files are checked for
	// a change; a changed pair is served to new connections without a
	// restart (SIGHUP reloads at once). 10s by default.
	ReloadInterval Duration `yaml:"reload_interval"`
	// HandshakeTimeout bounds a TLS handshake on an accepted connection.
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
	// MaxConnections caps the realm's accepted TLS connections at once;
	// more are closed at accept and counted. 1000 by default.
	MaxConnections int `yaml:"max_connections"`
}

// Client authentication modes.
const (
	ClientAuthNone    = "none"
	ClientAuthRequest = "request"
	ClientAuthRequire = "require"
)

// TLSAddrPort is where the realm listens for TLS (valid after Validate,
// when the realm has a tls block).
func (r *Realm) TLSAddrPort() netip.AddrPort {
	p := 0
	if r.TLS != nil {
		p = r.TLS.Port
	}
	return netip.AddrPortFrom(r.ListenAddrPort().Addr(), uint16(p))
}

func (c *Config) applyTLSDefaults() {
	for i := range c.Realms {
		r := &c.Realms[i]
		if r.TLS == nil {
			continue
		}
		t := r.TLS
		if t.Port == 0 {
			if p := int(r.ListenAddrPort().Port()); p > 0 && p < 65535 {
				t.Port = p + 1
			}
		}
		if t.ClientAuth == "" {
			t.ClientAuth = ClientAuthNone
		}
		if t.ReloadInterval == 0 {
			t.ReloadInterval = Duration(10 * time.Second)
		}
		if t.HandshakeTimeout == 0 {
			t.HandshakeTimeout = Duration(5 * time.Second)
		}
		if t.MaxConnections == 0 {
			t.MaxConnections = 1000
		}
	}
}

// validateTLS checks every realm's tls block: files readable and of the
// right kind, modes known, the TLS port free of the other listeners. It
// reads the files, so -check-config catches a missing or mismatched key.
func (c *Config) validateTLS() error {
	c.applyTLSDefaults()
	type bound struct {
		key  string
		addr netip.AddrPort
	}
	var tcpLike []bound // TCP and TLS listeners share the TCP port space
	for i := range c.Realms {
		r := &c.Realms[i]
		if r.HasTransport("tcp") {
			tcpLike = append(tcpLike, bound{fmt.Sprintf("realms[%d].listen", i), r.ListenAddrPort()})
		}
	}
	for i := range c.Realms {
		r := &c.Realms[i]
		k := fmt.Sprintf("realms[%d].tls", i)
		if r.TLS == nil {
			if r.HasTransport("tls") {
				return keyErr(k, "transport tls needs a tls block with cert and key")
			}
			continue
		}
		t := r.TLS
		if t.Port < 1 || t.Port > 65535 {
			return keyErr(k+".port", "%d is not a port", t.Port)
		}
		if r.HasTransport("tls") {
			ap := r.TLSAddrPort()
			for _, b := range tcpLike {
				if b.addr == ap {
					return keyErr(k+".port", "%s is already the TCP listener of %s", ap, b.key)
				}
			}
			tcpLike = append(tcpLike, bound{k + ".port", ap})
			if t.Cert == "" {
				return keyErr(k+".cert", "a realm listening on tls needs a certificate file")
			}
		}
		if (t.Cert == "") != (t.Key == "") {
			if t.Key == "" {
				return keyErr(k+".key", "cert is set, key is not")
			}
			return keyErr(k+".cert", "key is set, cert is not")
		}
		if t.Cert != "" {
			if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
				return keyErr(k+".cert", "cannot load %s with key %s: %v", t.Cert, t.Key, err)
			}
		}
		switch t.ClientAuth {
		case ClientAuthNone, ClientAuthRequest:
		case ClientAuthRequire:
			if t.ClientCA == "" {
				return keyErr(k+".client_ca", "client_auth require needs the CA that signs client certificates")
			}
		default:
			return keyErr(k+".client_auth", "%q must be none, request or require", t.ClientAuth)
		}
		if t.ClientCA != "" {
			if _, err := LoadCAPool(t.ClientCA); err != nil {
				return keyErr(k+".client_ca", "%v", err)
			}
		}
		if t.ServerCA != "" {
			if t.InsecureSkipVerifyLabOnly {
				return keyErr(k+".insecure_skip_verify_lab_only", "set together with server_ca: choose one")
			}
			if _, err := LoadCAPool(t.ServerCA); err != nil {
				return keyErr(k+".server_ca", "%v", err)
			}
		}
		if d := t.ReloadInterval.Std(); d < time.Second || d > 24*time.Hour {
			return keyErr(k+".reload_interval", "must be between 1s and 24h")
		}
		if d := t.HandshakeTimeout.Std(); d < 100*time.Millisecond || d > time.Minute {
			return keyErr(k+".handshake_timeout", "must be between 100ms and 1m")
		}
		if t.MaxConnections < 1 || t.MaxConnections > 100000 {
			return keyErr(k+".max_connections", "must be between 1 and 100000")
		}
	}
	return nil
}

// LoadCAPool reads a PEM bundle of CA certificates.
func LoadCAPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return p, nil
}
