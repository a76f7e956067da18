package sbc_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/internal/testpki"
	"github.com/edgesbc/edgesbc/sbc"
)

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tlsSBC is a B2BUA on loopback whose carrier realm listens on UDP and
// TLS; calls from the carrier go to pbx (UDP), calls from the enterprise
// go to carrierTargets (e.g. a TLS test UAS).
type tlsSBC struct {
	*sbc.SBC
	ca                  *testpki.CA
	dir                 string // holds the SBC's cert and key files
	cert                testpki.Pair
	carrier, enterprise string // UDP faces
	carrierTLS          string // the TLS listener
}

type tlsOpts struct {
	clientAuth     string // none, request, require
	extraTLS       string // more keys for the carrier realm's tls block
	pbx            string
	carrierTargets []string
	insecure       bool   // insecure_skip_verify_lab_only instead of server_ca
	top            string // more top-level config (e.g. a hep section)
}

func startTLSSBC(t *testing.T, o tlsOpts) *tlsSBC {
	t.Helper()
	s := &tlsSBC{ca: testpki.NewCA(t, "test-ca"), dir: t.TempDir()}
	s.cert = s.ca.Issue(s.dir, "sbc-carrier", "127.0.0.1")
	cp, ep, tp := freePort(t), freePort(t), freeTCPPort(t)
	if o.clientAuth == "" {
		o.clientAuth = "none"
	}
	if o.pbx == "" {
		o.pbx = "127.0.0.1:9" // discard: never reached in tests that set no PBX
	}
	entTLS := "" // a ;transport=tls PBX is verified against the test CA
	if strings.HasSuffix(o.pbx, ";transport=tls") {
		entTLS = ", tls: {server_ca: " + s.ca.File + "}"
	}
	verify := "server_ca: " + s.ca.File
	if o.insecure { // the two exclude each other
		verify = "insecure_skip_verify_lab_only: true"
	}
	y := fmt.Sprintf(`
realms:
  - name: carrier
    listen: "127.0.0.1:%d"
    transports: [udp, tls]
    media: {ports: %s}
    tls:
      port: %d
      cert: %s
      key: %s
      client_auth: %s
      client_ca: %s
      %s
      reload_interval: 1s
      handshake_timeout: 500ms
%s
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: %s}%s}
media: {timeout: 1m}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"], target_timeout: 500ms}
`, cp, mediaPorts(t, mediaChunk), tp, s.cert.CertFile, s.cert.KeyFile, o.clientAuth, s.ca.File, verify, o.extraTLS, ep, mediaPorts(t, mediaChunk), entTLS, o.pbx)
	if len(o.carrierTargets) > 0 {
		y += fmt.Sprintf("  - {name: out, from_realm: enterprise, to_realm: carrier, targets: [\"%s\"], target_timeout: 1s}\n", strings.Join(o.carrierTargets, `","`))
	}
	ts := runSBC(t, y+o.top, cp, ep)
	s.SBC, s.carrier, s.enterprise = ts.SBC, ts.carrier, ts.enterprise
	s.carrierTLS = fmt.Sprintf("127.0.0.1:%d", tp)
	return s
}

// dial opens a TLS connection to the SBC's carrier face with cfg (the
// test CA as roots unless cfg says otherwise) and completes the handshake.
func (s *tlsSBC) dial(t *testing.T, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.RootCAs == nil && !cfg.InsecureSkipVerify {
		cfg.RootCAs = s.ca.Pool
	}
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", s.carrierTLS, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// options sends an out-of-dialog OPTIONS on c and reports whether a 200
// came back on it: the whole path (handshake, client certificate check,
// sipgo's stream parser, the B2BUA, the answer on the same connection).
func options(t *testing.T, c net.Conn, n int) error {
	t.Helper()
	req := fmt.Sprintf("OPTIONS sip:ping@%s SIP/2.0\r\nVia: SIP/2.0/TLS %s;branch=z9hG4bK-opt%d\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@example.net>;tag=o%d\r\nTo: <sip:ping@example.net>\r\nCall-ID: opt-%d-%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		c.RemoteAddr(), c.LocalAddr(), n, n, n, time.Now().UnixNano())
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, 4096)
	var got []byte
	for !strings.Contains(string(got), "\r\n\r\n") {
		k, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		got = append(got, buf[:k]...)
	}
	if !strings.HasPrefix(string(got), "SIP/2.0 200") {
		return fmt.Errorf("answer: %q", strings.SplitN(string(got), "\r\n", 2)[0])
	}
	return nil
}

func handshakeFailures(s *tlsSBC) float64 {
	return metricSum(s.SBC, "sbc_tls_handshake_failures_total")
}

// metricSum adds up every series of a counter in the SBC's registry.
func metricSum(s *sbc.SBC, name string) float64 {
	mfs, _ := s.Metrics().Registry.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestTLSRefusesBelow12(t *testing.T) {
	s := startTLSSBC(t, tlsOpts{})
	before := handshakeFailures(s)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		c, err := s.dial(t, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: v})
		if err == nil {
			t.Fatalf("handshake at %s accepted (negotiated %s)", tls.VersionName(v), tls.VersionName(c.ConnectionState().Version))
		}
		if !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("TLS %s refused, but not for its version: %v", tls.VersionName(v), err)
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c, err := s.dial(t, &tls.Config{MinVersion: v, MaxVersion: v})
		if err != nil {
			t.Fatalf("%s refused: %v", tls.VersionName(v), err)
		}
		if err := options(t, c, int(v)); err != nil {
			t.Fatalf("OPTIONS over %s: %v", tls.VersionName(v), err)
		}
	}
	waitFor(t, "2 handshake failures counted", func() bool { return handshakeFailures(s)-before == 2 })
}

func TestTLSClientCertificates(t *testing.T) {
	other := testpki.NewCA(t, "other-ca")
	cases := []struct {
		mode   string
		cert   string // "", "good", "foreign"
		accept bool
	}{
		{"none", "", true},
		{"none", "foreign", true}, // not asked for, not looked at
		{"request", "", true},
		{"request", "good", true},
		{"request", "foreign", false}, // given, so verified
		{"require", "", false},
		{"require", "foreign", false},
		{"require", "good", true},
	}
	for _, tc := range cases {
		t.Run(tc.mode+"/"+orNone(tc.cert), func(t *testing.T) {
			s := startTLSSBC(t, tlsOpts{clientAuth: tc.mode})
			cfg := &tls.Config{MinVersion: tls.VersionTLS12}
			// GetClientCertificate, not Certificates: Go's client would
			// otherwise withhold a certificate the server's CA list does
			// not name, and the foreign case would test nothing.
			var cert *tls.Certificate
			switch tc.cert {
			case "good":
				c := s.ca.Issue("", "carrier-peer", "127.0.0.1").TLS
				cert = &c
			case "foreign":
				c := other.Issue("", "intruder", "127.0.0.1").TLS
				cert = &c
			}
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if cert == nil {
					return &tls.Certificate{}, nil
				}
				return cert, nil
			}
			// With TLS 1.3 the client finishes its handshake before the
			// server has judged its certificate: the verdict shows on the
			// first exchange, so the test judges by a full OPTIONS.
			c, err := s.dial(t, cfg)
			if err == nil {
				err = options(t, c, 1)
			}
			if tc.accept && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.accept && err == nil {
				t.Fatal("accepted a client it should have refused")
			}
		})
	}
}

func orNone(s string) string {
	if s == "" {
		return "no-cert"
	}
	return s
}

func servedSerial(t *testing.T, s *tlsSBC) string {
	t.Helper()
	c, err := s.dial(t, &tls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// A new certificate written over the files is served to new connections
// (by the file watcher, then by an explicit reload as on SIGHUP), while a
// connection made before goes on working; a broken pair is refused and
// the last good one stays.
func TestTLSReloadKeepsEstablishedConnections(t *testing.T) {
	s := startTLSSBC(t, tlsOpts{})
	first := s.cert.Cert.SerialNumber.String()
	if got := servedSerial(t, s); got != first {
		t.Fatalf("served serial %s, want %s", got, first)
	}
	old, err := s.dial(t, &tls.Config{MaxVersion: tls.VersionTLS12}) // a long-lived trunk connection
	if err != nil {
		t.Fatal(err)
	}
	if err := options(t, old, 1); err != nil {
		t.Fatal(err)
	}

	// Renewal by the watcher (reload_interval 1s): same names, new pair.
	second := s.ca.Issue(s.dir, "sbc-carrier", "127.0.0.1")
	waitForLong(t, func() bool { return servedSerial(t, s) == second.Cert.SerialNumber.String() }, "the watcher to serve the renewed certificate")
	if err := options(t, old, 2); err != nil {
		t.Fatalf("connection made before the reload broke: %v", err)
	}

	// Renewal by an explicit reload (SIGHUP in sbcd).
	third := s.ca.Issue(s.dir, "sbc-carrier", "127.0.0.1")
	if err := s.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, s); got != third.Cert.SerialNumber.String() {
		t.Fatalf("after ReloadTLS served %s, want %s", got, third.Cert.SerialNumber)
	}

	// A half-finished renewal: a key that does not match the certificate.
	other := s.ca.Issue(t.TempDir(), "elsewhere", "127.0.0.1")
	kb, _ := os.ReadFile(other.KeyFile)
	if err := os.WriteFile(s.cert.KeyFile, kb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadTLS(); err == nil {
		t.Fatal("ReloadTLS accepted a certificate with the wrong key")
	}
	if got := servedSerial(t, s); got != third.Cert.SerialNumber.String() {
		t.Fatalf("after a failed reload served %s, want the last good %s", got, third.Cert.SerialNumber)
	}
	if err := options(t, old, 3); err != nil {
		t.Fatalf("first connection broke: %v", err)
	}
	if n := metricSum(s.SBC, "sbc_tls_cert_reloads_total"); n < 4 {
		t.Errorf("cert reloads counted %v, want at least 4 (start, watcher, SIGHUP, failed)", n)
	}
}

func waitForLong(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tlsCaller is a TLS phone that dialed the SBC's carrier face.
func tlsCaller(t *testing.T, s *tlsSBC, scheme string) *testphone.StreamPhone {
	t.Helper()
	c, err := s.dial(t, &tls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := testphone.NewStream(t, "TLS", c.LocalAddr().String())
	p.Scheme = scheme
	p.Use(c)
	return p
}

// Carrier over TLS, PBX over UDP: a call set up and torn down from each
// side, with the SBC's TLS face in Via and Contact on the TLS leg.
func TestTLSCallCarrierToPBX(t *testing.T) {
	for _, scheme := range []string{"sip", "sips"} {
		t.Run(scheme, func(t *testing.T) {
			pbx := testphone.NewLoopback(t)
			s := startTLSSBC(t, tlsOpts{pbx: pbx.Addr})
			caller := tlsCaller(t, s, scheme)
			ruri := "sip:1000@" + s.carrierTLS + ";transport=tls"
			if scheme == "sips" {
				ruri = "sips:1000@" + s.carrierTLS
			}

			caller.Invite(ruri, "tls-call-"+scheme, testphone.TestSDP)
			caller.ExpectResponse(100, sip.INVITE, wait)
			if scheme == "sips" {
				// SIPS means TLS on every hop, and the PBX is on UDP:
				// RFC 5630's 480 with warning 380, and no leg B.
				res := caller.ExpectResponse(480, sip.INVITE, wait)
				if w := res.GetHeaders("Warning"); len(w) != 1 || !strings.HasPrefix(w[0].Value(), "380 ") {
					t.Errorf("480 without Warning 380: %v", w)
				}
				pbx.Quiet(300*time.Millisecond, func(sip.Message) bool { return true }, "leg B of a SIPS call over UDP")
				return
			}
			inv := pbx.ExpectRequest(sip.INVITE, wait)
			if v := inv.Via(); v.Transport != "UDP" || fmt.Sprintf("%s:%d", v.Host, v.Port) != s.enterprise {
				t.Errorf("PBX leg Via %s %s:%d, want UDP %s", v.Transport, v.Host, v.Port, s.enterprise)
			}
			pbx.Answer(inv, 200, "OK", "pbx1", testphone.TestSDP)
			ok := caller.ExpectResponse(200, sip.INVITE, wait)
			ct := ok.Contact().Address
			wantScheme, wantParam := "sip", "tls"
			if scheme == "sips" {
				wantScheme, wantParam = "sips", ""
			}
			tp, _ := ct.UriParams.Get("transport")
			if ct.Scheme != wantScheme || tp != wantParam || fmt.Sprintf("%s:%d", ct.Host, ct.Port) != s.carrierTLS {
				t.Errorf("Contact on the TLS leg %s, want %s:...@%s transport=%q", ct.String(), wantScheme, s.carrierTLS, wantParam)
			}
			if v := ok.Via(); v.Transport != "TLS" {
				t.Errorf("200 Via transport %s", v.Transport)
			}
			dA := testphone.CallerDialog(ok, s.carrierTLS)
			caller.Ack(nil, dA, 1, "ack1")
			pbx.ExpectRequest(sip.ACK, wait)

			// BYE from the PBX: the SBC sends it to the caller on TLS.
			// The caller's Contact is its own address; the SBC reaches it
			// over the connection the caller opened (sipgo reuses it).
			dB := testphone.CalleeDialog(inv, "pbx1")
			pbx.Request(dB, "BYE", 2, "bye-b", "")
			bye := caller.ExpectRequest(sip.BYE, wait)
			if v := bye.Via(); v.Transport != "TLS" || fmt.Sprintf("%s:%d", v.Host, v.Port) != s.carrierTLS {
				t.Errorf("BYE to the TLS caller has Via %s %s:%d", v.Transport, v.Host, v.Port)
			}
			caller.Answer(bye, 200, "OK", "", "")
			pbx.ExpectResponse(200, sip.BYE, wait)
			(&testSBC{SBC: s.SBC}).waitIdle(t)
		})
	}
}

// PBX over UDP calls out through a ;transport=tls target: the SBC dials
// it, verifies its certificate against server_ca, presents its own when
// asked, and the callee hangs up on the same connection.
func TestTLSCallToTLSTarget(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := l.Addr().String()
	s := startTLSSBC(t, tlsOpts{carrierTargets: []string{target + ";transport=tls"}})
	// The carrier's UAS: a certificate from the same test CA, and it wants
	// the SBC's client certificate.
	peer := s.ca.Issue("", "carrier-uas", "127.0.0.1")
	var peerSaw []*x509.Certificate
	srvCfg := &tls.Config{Certificates: []tls.Certificate{peer.TLS}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: s.ca.Pool,
		VerifyConnection: func(cs tls.ConnectionState) error { peerSaw = cs.PeerCertificates; return nil }}
	uas := testphone.NewStream(t, "TLS", target)
	uas.Serve(tls.NewListener(l, srvCfg))
	caller := testphone.NewLoopback(t)

	caller.Invite(s.enterprise, "0044123", "out-tls-1", testphone.TestSDP)
	caller.ExpectResponse(100, sip.INVITE, wait)
	inv := uas.ExpectRequest(sip.INVITE, wait)
	if tp, _ := inv.Recipient.UriParams.Get("transport"); tp != "tls" || inv.Recipient.Scheme != "sip" {
		t.Errorf("leg B Request-URI %s, want sip:...;transport=tls", inv.Recipient.String())
	}
	if v := inv.Via(); v.Transport != "TLS" || fmt.Sprintf("%s:%d", v.Host, v.Port) != s.carrierTLS {
		t.Errorf("leg B Via %s %s:%d, want TLS %s", v.Transport, v.Host, v.Port, s.carrierTLS)
	}
	if ct := inv.Contact().Address; fmt.Sprintf("%s:%d", ct.Host, ct.Port) != s.carrierTLS {
		t.Errorf("leg B Contact %s, want the TLS face %s", ct.String(), s.carrierTLS)
	} else if tp, _ := ct.UriParams.Get("transport"); tp != "tls" {
		t.Errorf("leg B Contact %s lacks transport=tls", ct.String())
	}
	if len(peerSaw) == 0 || peerSaw[0].SerialNumber.Cmp(s.cert.Cert.SerialNumber) != 0 {
		t.Errorf("the SBC did not present its realm certificate as client certificate")
	}
	uas.Answer(inv, 200, "OK", "uas1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	dA := testphone.CallerDialog(ok, s.enterprise)
	caller.Ack(dA, 1, "a1")
	uas.ExpectRequest(sip.ACK, wait)

	dB := testphone.CalleeDialog(inv, "uas1")
	uas.Request(uas.ConnOf(inv), dB, "BYE", 2, "bye-uas", "")
	bye := caller.ExpectRequest(sip.BYE, wait)
	caller.Answer(bye, 200, "OK", "", "")
	uas.ExpectResponse(200, sip.BYE, wait)
	(&testSBC{SBC: s.SBC}).waitIdle(t)
}

// A target whose certificate no configured CA signed is not called: the
// handshake fails, the target counts as down, the caller hears 408. With
// the lab's insecure flag instead of server_ca, the same target works.
func TestTLSTargetVerification(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		t.Run(fmt.Sprintf("insecure=%v", insecure), func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			o := tlsOpts{carrierTargets: []string{l.Addr().String() + ";transport=tls"}}
			o.insecure = insecure
			s := startTLSSBC(t, o)
			rogue := testpki.NewCA(t, "rogue-ca").Issue("", "rogue", "127.0.0.1")
			uas := testphone.NewStream(t, "TLS", l.Addr().String())
			uas.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{rogue.TLS}}))
			caller := testphone.NewLoopback(t)
			caller.Invite(s.enterprise, "0044123", "verify-tls", testphone.TestSDP)
			caller.ExpectResponse(100, sip.INVITE, wait)
			if !insecure {
				if m := uas.Next(1500*time.Millisecond, func(sip.Message) bool { return true }); m != nil {
					t.Fatalf("an unverified target got: %s", m.String())
				}
				caller.ExpectResponse(408, sip.INVITE, 3*time.Second)
				return
			}
			inv := uas.ExpectRequest(sip.INVITE, wait)
			uas.Answer(inv, 486, "Busy Here", "uas1", "")
			caller.ExpectResponse(486, sip.INVITE, wait)
		})
	}
}

// A SIPS request-URI that arrived over UDP cannot be honoured (SIPS means
// TLS on every hop): 416.
func TestSIPSOverUDPRefused(t *testing.T) {
	pbx := testphone.NewLoopback(t)
	s := startTLSSBC(t, tlsOpts{pbx: pbx.Addr})
	caller := testphone.NewLoopback(t)
	caller.Send(s.carrier, fmt.Sprintf(`INVITE sips:1000@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-sips-udp
		Max-Forwards: 70
		From: <sip:alice@example.net>;tag=f1
		To: <sips:1000@example.net>
		Call-ID: sips-over-udp
		CSeq: 1 INVITE
		Contact: <sip:alice@%s>`, s.carrierTLS, caller.Addr, caller.Addr), testphone.TestSDP)
	caller.ExpectResponse(416, sip.INVITE, wait)
	pbx.Quiet(300*time.Millisecond, func(m sip.Message) bool { return true }, "leg B for a refused SIPS call")
}

// max_connections: one connection over the cap is closed at accept and
// counted; closing one frees its place.
func TestTLSMaxConnections(t *testing.T) {
	s := startTLSSBC(t, tlsOpts{extraTLS: "      max_connections: 2"})
	a, err := s.dial(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.dial(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := options(t, a, 1); err != nil {
		t.Fatal(err)
	}
	if err := options(t, b, 2); err != nil {
		t.Fatal(err)
	}
	if c, err := s.dial(t, nil); err == nil {
		if options(t, c, 3) == nil {
			t.Fatal("a third connection was served past max_connections 2")
		}
	}
	if n := metricSum(s.SBC, "sbc_tls_connections_refused_total"); n != 1 {
		t.Errorf("refused connections counted %v, want 1", n)
	}
	a.Close()
	waitFor(t, "a closed connection's place to be free again", func() bool {
		c, err := s.dial(t, nil)
		return err == nil && options(t, c, 4) == nil
	})
}

// A TLS caller whose Contact is its own TLS listener, not the connection
// it called from (a carrier's usual setup): the SBC dials that Contact,
// verifying it against server_ca, to deliver the callee's BYE.
func TestTLSInDialogToContactListener(t *testing.T) {
	pbx := testphone.NewLoopback(t)
	s := startTLSSBC(t, tlsOpts{pbx: pbx.Addr})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	me := s.ca.Issue("", "carrier-switch", "127.0.0.1")
	c, err := s.dial(t, &tls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	caller := testphone.NewStream(t, "TLS", l.Addr().String()) // Via and Contact name the listener
	caller.Use(c)
	caller.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{me.TLS}}))

	caller.Invite("sip:1000@"+s.carrierTLS+";transport=tls", "contact-listener", testphone.TestSDP)
	inv := pbx.ExpectRequest(sip.INVITE, wait)
	pbx.Answer(inv, 200, "OK", "pbx1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	caller.Ack(nil, testphone.CallerDialog(ok, ""), 1, "ack1")
	pbx.ExpectRequest(sip.ACK, wait)
	pbx.Request(testphone.CalleeDialog(inv, "pbx1"), "BYE", 2, "bye-b", "")
	bye := caller.ExpectRequest(sip.BYE, wait)
	if caller.ConnOf(bye) == net.Conn(c) {
		t.Fatal("BYE came on the caller's own connection, not to its Contact")
	}
	caller.Answer(bye, 200, "OK", "", "")
	pbx.ExpectResponse(200, sip.BYE, wait)
	(&testSBC{SBC: s.SBC}).waitIdle(t)
}

// A peer that connects and never says hello is dropped after
// handshake_timeout (500ms here) and counted: no stuck reader per socket.
func TestTLSHandshakeTimeout(t *testing.T) {
	s := startTLSSBC(t, tlsOpts{})
	before := handshakeFailures(s)
	c, err := net.Dial("tcp", s.carrierTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the SBC sent something to a silent peer")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a silent peer was still connected after 3s")
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 2*time.Second {
		t.Errorf("silent peer dropped after %v, want about 500ms", d)
	}
	waitFor(t, "the timeout counted as a handshake failure", func() bool { return handshakeFailures(s)-before == 1 })
}

// A TLS target that accepts the TCP connection and never answers the
// handshake must not hold the call: after handshake_timeout the target
// counts as failed and the caller hears 408.
func TestTLSTargetSilentHandshake(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the test ends
		}
	}()
	s := startTLSSBC(t, tlsOpts{carrierTargets: []string{l.Addr().String() + ";transport=tls"}})
	caller := testphone.NewLoopback(t)
	start := time.Now()
	caller.Invite(s.enterprise, "0044123", "silent-tls", testphone.TestSDP)
	caller.ExpectResponse(408, sip.INVITE, 4*time.Second)
	t.Logf("408 after %v", time.Since(start).Round(time.Millisecond))
	(&testSBC{SBC: s.SBC}).waitIdle(t)
}

// SIPS end to end: a sips: call over TLS to a PBX reached over TLS keeps
// its scheme on leg B (request-URI and Contact sips:), and the caller sees
// the SBC's sips: Contact.
func TestSIPSCallOverTLSBothLegs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := startTLSSBC(t, tlsOpts{pbx: l.Addr().String() + ";transport=tls"})
	pbxCert := s.ca.Issue("", "pbx", "127.0.0.1")
	pbx := testphone.NewStream(t, "TLS", l.Addr().String())
	pbx.Scheme = "sips"
	pbx.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{pbxCert.TLS}}))
	caller := tlsCaller(t, s, "sips")

	caller.Invite("sips:1000@"+s.carrierTLS, "sips-both", testphone.TestSDP)
	inv := pbx.ExpectRequest(sip.INVITE, wait)
	if inv.Recipient.Scheme != "sips" || inv.Contact().Address.Scheme != "sips" || inv.Via().Transport != "TLS" {
		t.Errorf("leg B of a SIPS call: request-URI %s, Contact %s, Via %s", inv.Recipient.String(), inv.Contact().Address.String(), inv.Via().Transport)
	}
	pbx.Answer(inv, 200, "OK", "pbx1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	if ct := ok.Contact().Address; ct.Scheme != "sips" || fmt.Sprintf("%s:%d", ct.Host, ct.Port) != s.carrierTLS {
		t.Errorf("Contact to the SIPS caller %s, want sips:...@%s", ct.String(), s.carrierTLS)
	}
	dA := testphone.CallerDialog(ok, "")
	caller.Ack(nil, dA, 1, "ack1")
	pbx.ExpectRequest(sip.ACK, wait)
	caller.Request(nil, dA, "BYE", 2, "bye-a", "")
	bye := pbx.ExpectRequest(sip.BYE, wait)
	if bye.Recipient.Scheme != "sips" {
		t.Errorf("BYE on leg B to %s, want the PBX's sips: Contact", bye.Recipient.String())
	}
	pbx.Answer(bye, 200, "OK", "", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	(&testSBC{SBC: s.SBC}).waitIdle(t)
}
