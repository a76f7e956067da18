package sbc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/config"
)

// realmTLS is one realm's SIP over TLS: the certificate it serves (swapped
// atomically on reload, so new handshakes get the new one while every
// established connection keeps its session), the server config for its
// listener, and the client config its sipgo user agent dials TLS peers
// with. Minimum version TLS 1.2 on both sides.
type realmTLS struct {
	cfg   config.RealmTLS
	realm string
	log   *slog.Logger
	m     *tlsMetrics

	cert atomic.Pointer[tls.Certificate]
	mu   sync.Mutex // reloads
	sum  [32]byte   // sha256 of the cert and key files last loaded
	bad  [32]byte   // the last pair that failed to load (logged once)

	server *tls.Config
	client *tls.Config
	ln     net.Listener
	stop   chan struct{}
}

type tlsMetrics struct {
	handshakeFailures *prometheus.CounterVec // by realm
	refused           *prometheus.CounterVec // by realm: over max_connections
	open              *prometheus.GaugeVec   // by realm
	reloads           *prometheus.CounterVec // by realm, result
	notAfter          *prometheus.GaugeVec   // by realm
}

// newTLSMetrics registers the TLS series once per registry (each realm
// calls it; the second gets the collectors the first registered).
func newTLSMetrics(reg prometheus.Registerer) *tlsMetrics {
	m := &tlsMetrics{
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_tls_handshake_failures_total", Help: "TLS handshakes on a realm's listener that failed or timed out (old versions, bad or missing client certificates, scanners).",
		}, []string{"realm"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_tls_connections_refused_total", Help: "TLS connections closed at accept because the realm had max_connections open.",
		}, []string{"realm"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sbc_tls_connections", Help: "Accepted TLS connections open, by realm.",
		}, []string{"realm"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbc_tls_cert_reloads_total", Help: "Certificate reloads by realm and result (ok, error).",
		}, []string{"realm", "result"}),
		notAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sbc_tls_cert_not_after_seconds", Help: "Expiry (Unix time) of the certificate each realm serves.",
		}, []string{"realm"}),
	}
	m.handshakeFailures = registerOrExisting(reg, m.handshakeFailures)
	m.refused = registerOrExisting(reg, m.refused)
	m.open = registerOrExisting(reg, m.open)
	m.reloads = registerOrExisting(reg, m.reloads)
	m.notAfter = registerOrExisting(reg, m.notAfter)
	return m
}

func registerOrExisting[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if e, ok := are.ExistingCollector.(C); ok {
				return e
			}
		}
	}
	return c
}

// setupTLS prepares the realm's TLS state before its user agent exists
// (the UA takes the client config at creation). A realm without a tls
// block still gets a client config, so a ;transport=tls target verifies
// against the system roots with TLS 1.2 at least.
func (r *Realm) setupTLS(s *SBC) error {
	if r.cfg.TLS == nil {
		return nil
	}
	t := &realmTLS{cfg: *r.cfg.TLS, realm: r.Name, log: r.log, m: newTLSMetrics(s.metrics.Registry), stop: make(chan struct{})}
	if t.cfg.Cert != "" {
		if _, err := t.reload(true); err != nil {
			return fmt.Errorf("realm %s: %w", r.Name, err)
		}
	}
	t.server = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: t.getCertificate,
	}
	switch t.cfg.ClientAuth {
	case config.ClientAuthRequire:
		t.server.ClientAuth = tls.RequireAndVerifyClientCert
	case config.ClientAuthRequest:
		t.server.ClientAuth = tls.RequestClientCert
		if t.cfg.ClientCA != "" {
			t.server.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	if t.cfg.ClientCA != "" {
		pool, err := config.LoadCAPool(t.cfg.ClientCA)
		if err != nil {
			return fmt.Errorf("realm %s: tls.client_ca: %w", r.Name, err)
		}
		t.server.ClientCAs = pool
	}
	t.client = &tls.Config{
		MinVersion:           tls.VersionTLS12,
		InsecureSkipVerify:   t.cfg.InsecureSkipVerifyLabOnly, //nolint:gosec // named so, lab only, documented
		GetClientCertificate: t.getClientCertificate,
	}
	if t.cfg.ServerCA != "" {
		pool, err := config.LoadCAPool(t.cfg.ServerCA)
		if err != nil {
			return fmt.Errorf("realm %s: tls.server_ca: %w", r.Name, err)
		}
		t.client.RootCAs = pool
	}
	if t.cfg.InsecureSkipVerifyLabOnly {
		r.log.Warn("TLS peers are not verified (insecure_skip_verify_lab_only): for a lab only")
	}
	r.tls = t
	return nil
}

// clientTLSConfig is what the realm's user agent dials TLS peers with.
func (r *Realm) clientTLSConfig() *tls.Config {
	if r.tls != nil {
		return r.tls.client
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

func (t *realmTLS) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := t.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no certificate configured")
}

// getClientCertificate presents the realm's certificate to a peer that
// asks for one; none (an empty chain) when the realm has none.
func (t *realmTLS) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := t.cert.Load(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil
}

// reload loads the cert and key files when they changed since the last
// load (always when force). A pair that fails to load leaves the served
// certificate as it was: a half-written renewal never takes the listener
// down, and the next check tries again.
func (t *realmTLS) reload(force bool) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cb, err1 := os.ReadFile(t.cfg.Cert)
	kb, err2 := os.ReadFile(t.cfg.Key)
	if err := errors.Join(err1, err2); err != nil {
		t.m.reloads.WithLabelValues(t.realm, "error").Inc()
		return false, fmt.Errorf("tls: read certificate: %w", err)
	}
	sum := sha256.Sum256(append(append(bytes.Clone(cb), 0), kb...))
	if !force && sum == t.sum {
		return false, nil
	}
	pair, err := tls.X509KeyPair(cb, kb)
	if err == nil && pair.Leaf == nil {
		pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0])
	}
	if err != nil {
		t.m.reloads.WithLabelValues(t.realm, "error").Inc()
		err = fmt.Errorf("tls: load %s with key %s: %w", t.cfg.Cert, t.cfg.Key, err)
		if sum != t.bad {
			t.bad = sum
			if t.cert.Load() != nil {
				t.log.Warn("TLS certificate not reloaded; still serving the previous one", "error", err)
			}
		}
		return false, err
	}
	t.sum = sum
	t.cert.Store(&pair)
	t.m.reloads.WithLabelValues(t.realm, "ok").Inc()
	t.m.notAfter.WithLabelValues(t.realm).Set(float64(pair.Leaf.NotAfter.Unix()))
	t.log.Info("TLS certificate loaded", "subject", pair.Leaf.Subject.String(), "serial", pair.Leaf.SerialNumber.String(), "not_after", pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return true, nil
}

// ReloadTLS reloads every realm's certificate and key from their files
// (sbcd calls it on SIGHUP). Established connections keep their sessions;
// new handshakes get the new certificate. A realm whose files do not load
// keeps serving its previous certificate; the errors are returned joined.
func (s *SBC) ReloadTLS() error {
	var errs []error
	for _, r := range s.order {
		if r.tls == nil || r.tls.cfg.Cert == "" {
			continue
		}
		if _, err := r.tls.reload(true); err != nil {
			errs = append(errs, fmt.Errorf("realm %s: %w", r.Name, err))
		}
	}
	return errors.Join(errs...)
}

// listenTLS opens the realm's TLS listener on its listen IP and TLS port.
func (r *Realm) listenTLS() error {
	if !r.cfg.HasTransport("tls") || r.tls == nil {
		return nil
	}
	addr := r.cfg.TLSAddrPort().String()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("realm %s: listen tls %s: %w", r.Name, addr, err)
	}
	r.tls.ln = &tlsListener{Listener: r.guardListen(r.guard, l), t: r.tls}
	return nil
}

func (r *Realm) serveTLS() {
	if r.tls == nil {
		return
	}
	if r.tls.ln != nil {
		go func() {
			if err := r.srv.ServeTLS(r.hepListen(r.tls.ln)); !errors.Is(err, net.ErrClosed) { // never nil
				r.log.Error("TLS listener stopped", "error", err)
			}
		}()
	}
	if r.tls.cfg.Cert != "" {
		go r.tls.watch()
	}
}

// watch checks the certificate files every reload_interval and swaps in
// a changed pair. Polling (not inotify) also sees renewals that replace a
// symlink or a mounted secret, and costs two small reads per interval.
func (t *realmTLS) watch() {
	tick := time.NewTicker(t.cfg.ReloadInterval.Std())
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			_, _ = t.reload(false)
		}
	}
}

func (r *Realm) closeTLS() {
	if r.tls == nil {
		return
	}
	select {
	case <-r.tls.stop:
	default:
		close(r.tls.stop)
	}
	if r.tls.ln != nil {
		r.tls.ln.Close()
	}
}

// tlsListener hands sipgo TLS server connections whose handshake runs on
// the connection's first read (sipgo's per-connection goroutine, never the
// accept loop) with a deadline, so a peer that connects and stays silent,
// or offers TLS 1.1, costs one short-lived goroutine and a counter, not a
// log line or a stuck reader.
//
// It also caps the connections open at once (max_connections): one over
// the cap is closed at accept, before any TLS work, and counted.
type tlsListener struct {
	net.Listener
	t      *realmTLS
	active atomic.Int64
}

func (l *tlsListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) > int64(l.t.cfg.MaxConnections) {
			l.active.Add(-1)
			l.t.m.refused.WithLabelValues(l.t.realm).Inc()
			_ = c.Close()
			continue // never an error: that would stop sipgo's accept loop
		}
		l.t.m.open.WithLabelValues(l.t.realm).Inc()
		return &tlsServerConn{Conn: tls.Server(c, l.t.server), t: l.t, l: l}, nil
	}
}

type tlsServerConn struct {
	*tls.Conn
	t      *realmTLS
	l      *tlsListener
	once   sync.Once
	err    error
	closed atomic.Bool
}

// Close releases the connection's place under max_connections, once.
func (c *tlsServerConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.active.Add(-1)
		c.t.m.open.WithLabelValues(c.t.realm).Dec()
	}
	return c.Conn.Close()
}

func (c *tlsServerConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.t.cfg.HandshakeTimeout.Std())
		defer cancel()
		if err := c.Conn.HandshakeContext(ctx); err != nil {
			c.t.m.handshakeFailures.WithLabelValues(c.t.realm).Inc()
			c.t.log.Debug("TLS handshake failed", "from", c.Conn.RemoteAddr().String(), "error", err)
			_ = c.Close()
			// EOF: sipgo treats it as a closed connection, quietly.
			c.err = io.EOF
			return
		}
		if st := c.Conn.ConnectionState(); len(st.PeerCertificates) > 0 {
			c.t.log.Debug("TLS peer", "from", c.Conn.RemoteAddr().String(), "subject", st.PeerCertificates[0].Subject.String())
		}
	})
	return c.err
}

func (c *tlsServerConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *tlsServerConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// tlsPort is the realm's TLS listening port, for Via and Contact on TLS legs.
func (r *Realm) tlsPort() int {
	return int(r.cfg.TLSAddrPort().Port())
}

// connectContext bounds how long sending a TLS request may wait for its
// connection: sipgo dials and handshakes inside the send, under the
// request's context, so a peer that accepts TCP and never answers the
// handshake would otherwise hold the call (and the target's failover)
// forever. sipgo uses this context for the connection only, not for the
// transaction, so cancelling it after the send is safe.
func (r *Realm) connectContext(ctx context.Context, req *sip.Request) (context.Context, context.CancelFunc) {
	if !strings.EqualFold(req.Transport(), "TLS") {
		return ctx, func() {}
	}
	d := 5 * time.Second
	if r.tls != nil {
		d = r.tls.cfg.HandshakeTimeout.Std()
	}
	return context.WithTimeout(ctx, d)
}
