package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/internal/testpki"
)

// tlsLab is sbcd in the lab with the carrier side on TLS only (port 5061,
// client certificates required, the carrier verified against the same test
// CA) and the PBX side on UDP.
type tlsLab struct {
	sbc     *sbcd
	ca      *testpki.CA
	carrier testpki.Pair // the carrier's certificate (203.0.113.10)
	sbcCert testpki.Pair // the SBC's carrier-side certificate files
}

func startTLSLab(t *testing.T) *tlsLab {
	t.Helper()
	dir := t.TempDir()
	l := &tlsLab{ca: testpki.NewCA(t, "lab-ca")}
	sbcCert := l.ca.Issue(dir, "sbc-ext", sbcExt)
	l.sbcCert = sbcCert
	l.carrier = l.ca.Issue(dir, "carrier", carrierHost)
	y := fmt.Sprintf(`realms:
  - name: carrier
    listen: "%s:5060"
    transports: [tls]
    tls: {port: 5061, cert: %s, key: %s, client_auth: require, client_ca: %s, server_ca: %s, reload_interval: 1h}
  - {name: enterprise, listen: "%s:5060", transports: [udp]}
routes:
  - {name: carrier-to-pbx, from_realm: carrier, to_realm: enterprise, targets: ["%s:5060"]}
  - {name: pbx-to-carrier, from_realm: enterprise, to_realm: carrier, targets: ["%s:5061;transport=tls"]}
`, sbcExt, sbcCert.CertFile, sbcCert.KeyFile, l.ca.File, l.ca.File, sbcInt, pbxHost, carrierHost)
	p := filepath.Join(dir, "sbc.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	l.sbc = startSBCD(t, p)
	return l
}

func (l *tlsLab) clientConfig() *tls.Config {
	return &tls.Config{RootCAs: l.ca.Pool, Certificates: []tls.Certificate{l.carrier.TLS}, MinVersion: tls.VersionTLS12}
}

// dialSBC opens a TLS connection from the carrier host to the SBC.
func (l *tlsLab) dialSBC(t *testing.T) *tls.Conn {
	t.Helper()
	var raw net.Conn
	err := inNetns("car", func() error {
		var err error
		raw, err = (&net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(carrierHost)}}).Dial("tcp", sbcExt+":5061")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := l.clientConfig()
	cfg.ServerName = sbcExt // verified against the certificate's IP SAN
	c := tls.Client(raw, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		t.Fatalf("TLS handshake with the SBC: %v", err)
	}
	return c
}

// Carrier on TLS, PBX on UDP (real SIPp): calls set up and torn down in
// both directions and by either side, while the carrier wire is captured.
// The capture must hold TLS records and not one byte of plaintext SIP.
func TestTLSCallsInLab(t *testing.T) {
	needLab(t)
	l := startTLSLab(t)
	wire := startCaptureFilter(t, "car", "car0", "tcp port 5061 or port 5060")
	const wait = 5 * time.Second

	t.Run("carrier (TLS) calls PBX (SIPp UDP), caller hangs up", func(t *testing.T) {
		const n = 3
		pbx := startSIPp(t, "ent", "uas.xml", pbxArgs("-m", fmt.Sprint(n))...)
		waitUDPListen(t, "ent", pbxHost, 5060)
		c := l.dialSBC(t)
		phone := testphone.NewStream(t, "TLS", c.LocalAddr().String())
		phone.Use(c) // one trunk connection for all calls
		for i := 0; i < n; i++ {
			cid := fmt.Sprintf("lab-tls-a-%d-%d", i, time.Now().UnixNano())
			phone.Invite("sip:1000@"+sbcExt+":5061;transport=tls", cid, labSDP)
			ok := phone.ExpectResponse(200, sip.INVITE, wait)
			d := testphone.CallerDialog(ok, "")
			phone.Ack(nil, d, 1, cid+"-ack")
			time.Sleep(100 * time.Millisecond)
			phone.Request(nil, d, "BYE", 2, cid+"-bye", "")
			phone.ExpectResponse(200, sip.BYE, wait)
		}
		pbx.wait(t, 20*time.Second)
		l.sbc.waitIdle(t)
	})

	t.Run("carrier (TLS) calls PBX (SIPp UDP), callee hangs up", func(t *testing.T) {
		pbx := startSIPp(t, "ent", "uas_bye.xml", pbxArgs("-m", "1")...)
		waitUDPListen(t, "ent", pbxHost, 5060)
		c := l.dialSBC(t)
		phone := testphone.NewStream(t, "TLS", c.LocalAddr().String())
		phone.Use(c)
		cid := fmt.Sprintf("lab-tls-b-%d", time.Now().UnixNano())
		phone.Invite("sip:1000@"+sbcExt+":5061;transport=tls", cid, labSDP)
		ok := phone.ExpectResponse(200, sip.INVITE, wait)
		phone.Ack(nil, testphone.CallerDialog(ok, ""), 1, cid+"-ack")
		bye := phone.ExpectRequest(sip.BYE, wait) // over the carrier's own connection
		phone.Answer(bye, 200, "OK", "", "")
		pbx.wait(t, 20*time.Second)
		l.sbc.waitIdle(t)
	})

	t.Run("PBX (SIPp UDP) calls carrier (TLS target, verified both ways)", func(t *testing.T) {
		const n = 3
		var ln net.Listener
		if err := inNetns("car", func() error {
			var err error
			ln, err = net.Listen("tcp", carrierHost+":5061")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		srv := l.clientConfig()
		srv.ClientAuth = tls.RequireAndVerifyClientCert
		srv.ClientCAs = l.ca.Pool
		uas := testphone.NewStream(t, "TLS", carrierHost+":5061")
		uas.Serve(tls.NewListener(ln, srv))
		caller := startSIPp(t, "ent", "uac.xml", pbxArgs(sbcInt+":5060", "-s", "0044123", "-m", fmt.Sprint(n), "-r", "1")...)
		for i := 0; i < n; i++ {
			inv := uas.ExpectRequest(sip.INVITE, wait)
			tag := fmt.Sprintf("uas%d", i)
			uas.Answer(inv, 180, "Ringing", tag, "")
			uas.Answer(inv, 200, "OK", tag, labSDP)
			uas.ExpectRequest(sip.ACK, wait)
			bye := uas.ExpectRequest(sip.BYE, wait)
			uas.Answer(bye, 200, "OK", "", "")
		}
		caller.wait(t, 30*time.Second)
		l.sbc.waitIdle(t)
	})

	t.Run("SIGHUP serves a renewed certificate, the trunk connection stays", func(t *testing.T) {
		trunk := l.dialSBC(t)
		phone := testphone.NewStream(t, "TLS", trunk.LocalAddr().String())
		phone.Use(trunk)
		ping := func(n int) {
			phone.Request(nil, testphone.Dialog{CallID: fmt.Sprintf("ping-%d-%d", n, time.Now().UnixNano()), LocalURI: "sip:carrier@" + carrierHost,
				LocalTag: "p", RemoteURI: "sip:sbc@" + sbcExt, Target: "sip:sbc@" + sbcExt + ":5061;transport=tls"}, "OPTIONS", 1, fmt.Sprintf("ping%d", n), "")
			phone.ExpectResponse(200, sip.OPTIONS, wait)
		}
		ping(1)
		renewed := l.ca.Issue(filepath.Dir(l.sbcCert.CertFile), "sbc-ext", sbcExt)
		if err := l.sbc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			c := l.dialSBC(t)
			got := c.ConnectionState().PeerCertificates[0].SerialNumber
			c.Close()
			if got.Cmp(renewed.Cert.SerialNumber) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after SIGHUP the SBC still serves serial %s, want %s", got, renewed.Cert.SerialNumber)
			}
			time.Sleep(100 * time.Millisecond)
		}
		ping(2) // the connection made before the reload
		if !l.sbc.alive() {
			t.Fatal("sbcd died on SIGHUP")
		}
	})

	payloads := wire.stop(t)
	var tlsRecords, bytesSeen int
	for _, p := range payloads {
		bytesSeen += len(p)
		if len(p) >= 5 && (p[0] == 0x16 || p[0] == 0x17) && p[1] == 3 {
			tlsRecords++
		}
		for _, plain := range [][]byte{[]byte("SIP/2.0"), []byte("INVITE "), []byte("sip:"), []byte("Call-ID"), []byte("m=audio")} {
			if bytes.Contains(p, plain) {
				t.Fatalf("plaintext SIP on the carrier wire (%q):\n%q", plain, p)
			}
		}
	}
	if tlsRecords < 10 || bytesSeen < 5000 {
		t.Fatalf("capture too small to prove anything: %d TLS records, %d bytes", tlsRecords, bytesSeen)
	}
	t.Logf("carrier wire: %d segments, %d TLS records, %d bytes, no plaintext SIP", len(payloads), tlsRecords, bytesSeen)
	if got := l.sbc.metric(t, "sbc_calls_total"); got < 7 {
		t.Errorf("sbc_calls_total %v, want 7 calls", got)
	}
}

// labSDP is an offer from the carrier host (media is anchored in the lab
// config, so the SBC rewrites it; no RTP flows in these tests).
const labSDP = "v=0\r\no=- 1 1 IN IP4 " + carrierHost + "\r\ns=-\r\nc=IN IP4 " + carrierHost + "\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
