package sbc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/edgesbc/edgesbc/api"
	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/testcarrier"
	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/sbc"
)

var timersOnce sync.Once

// setTimers lets the first sbc.New set sipgo's process-wide transaction
// timers before any test carrier (also sipgo) runs transactions that read
// them: the race detector would see the write race the reads otherwise.
func setTimers(t *testing.T) {
	timersOnce.Do(func() {
		// Started and closed at once, no call: media does not matter.
		cfg, err := config.Parse([]byte("realms: [{name: x, listen: \"127.0.0.1:1\"}]\nmedia: {enabled: false}\n"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := sbc.New(cfg, sbc.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Close(context.Background())
	})
}

// startCarrier runs a test carrier on loopback.
func startCarrier(t *testing.T, opt testcarrier.Options) (*testcarrier.Carrier, string) {
	t.Helper()
	setTimers(t)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := testcarrier.Start(conn, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, conn.LocalAddr().String()
}

// startTrunkSBC runs a B2BUA on loopback with the given trunks/routing
// YAML appended; %CARRIER% and %ENTERPRISE% in it become the SBC's own
// addresses. Calls from the carrier go to pbx (when given).
func startTrunkSBC(t *testing.T, tail string, pbx string, carrierRealm ...string) *testSBC {
	t.Helper()
	return startTrunkSBCWith(t, nil, tail, pbx, carrierRealm...)
}

// startTrunkSBCWith is startTrunkSBC with an option (a fake clock, say).
func startTrunkSBCWith(t *testing.T, opt func(*sbc.Options), tail string, pbx string, carrierRealm ...string) *testSBC {
	t.Helper()
	cp, ep := freePort(t), freePort(t)
	y := fmt.Sprintf(`
realms:
  - name: carrier
    listen: "127.0.0.1:%d"
    user_agent: SBC-Carrier-Face
    media: {ports: %s}
`+strings.Join(carrierRealm, "")+`
  - name: enterprise
    listen: "127.0.0.1:%d"
    user_agent: SBC-Enterprise-Face
    media: {ports: %s}
media: {timeout: 1m}
`, cp, mediaPorts(t, mediaChunk), ep, mediaPorts(t, mediaChunk))
	if pbx != "" {
		y += fmt.Sprintf("routes:\n  - {name: in, from_realm: carrier, to_realm: enterprise, targets: [%q], target_timeout: 400ms}\n", pbx)
	}
	y += tail
	if opt == nil {
		return runSBC(t, y, cp, ep)
	}
	return runSBC(t, y, cp, ep, opt)
}

func trunkInfo(t *testing.T, s *testSBC, name string) api.Trunk {
	t.Helper()
	for _, ti := range s.Trunks() {
		if ti.Name == name {
			return ti
		}
	}
	t.Fatalf("no trunk %s in %+v", name, s.Trunks())
	return api.Trunk{}
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTrunkRegisterDigest: the SBC registers through a digest challenge
// with each RFC 8760 algorithm, picks the carrier's preferred one when
// offered several, and refreshes before the granted expiry, every
// refresh challenged and answered again on the same Call-ID with a rising
// CSeq.
func TestTrunkRegisterDigest(t *testing.T) {
	for _, algs := range [][]string{{"MD5"}, {"SHA-256"}, {"SHA-256", "MD5"}} {
		t.Run(strings.Join(algs, "+"), func(t *testing.T) {
			car, addr := startCarrier(t, testcarrier.Options{Realm: "carrier.test", User: "acct1", Password: "pw-1", Algorithms: algs, Grant: 2})
			s := startTrunkSBC(t, fmt.Sprintf(`
trunks:
  - name: upstream
    realm: carrier
    targets: [%q]
    domain: carrier.test
    credentials: {username: acct1, password: pw-1}
    register: {enabled: true, expires: 300}
`, addr), "")
			// Granted 2 s: the contract is a refresh before the binding
			// expires (under 2 s after the last one) and not before half
			// of it has run (no REGISTER storm); the SBC aims at 50-80%,
			// and a loaded machine can only make a timer late. Three
			// registrations: 4 s at most, 8 s allowed.
			eventually(t, 8*time.Second, "three registrations", func() bool { return len(car.Registers()) >= 3 })
			regs := car.Registers()
			for i, r := range regs {
				if r.Algorithm != algs[0] || r.CallID != regs[0].CallID || (i > 0 && r.CSeq <= regs[i-1].CSeq) || r.Expires != 2 {
					t.Fatalf("register %d: %+v (first %+v)", i, r, regs[0])
				}
				if !strings.HasPrefix(r.Contact, "sip:acct1@"+strings.TrimPrefix(s.carrier, "")) {
					t.Fatalf("contact %s, want the SBC's carrier face %s", r.Contact, s.carrier)
				}
				if i > 0 {
					gap := r.At.Sub(regs[i-1].At)
					if gap < time.Second || gap >= 2*time.Second {
						t.Fatalf("refresh after %v: want it before the 2 s binding expires, and not before half of it", gap)
					}
				}
			}
			ti := trunkInfo(t, s, "upstream")
			if ti.Registration == nil || ti.Registration.State != "registered" || ti.Registration.Expires != 2 || ti.Registration.AOR != "sip:acct1@carrier.test" {
				t.Fatalf("admin state %+v", ti.Registration)
			}
			if got := metricValue(t, s, "sbc_trunk_registered", "trunk=upstream"); got != 1 {
				t.Fatalf("sbc_trunk_registered = %v", got)
			}
			if car.Rejected() != 0 {
				t.Fatalf("%d REGISTERs had bad credentials", car.Rejected())
			}
		})
	}
}

// metricValue sums the series of a metric whose labels include all the
// given name=value pairs.
func metricValue(t *testing.T, s *testSBC, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := s.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				if have[k] != v {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
		}
	}
	return sum
}

// TestTrunkRegisterFailureRecovery: with the registrar silent the
// registration fails, is retried with growing back-off and shows as
// failed; when the registrar is back it registers again.
func TestTrunkRegisterFailureRecovery(t *testing.T) {
	car, addr := startCarrier(t, testcarrier.Options{Realm: "r", User: "u", Password: "p", Algorithms: []string{"SHA-256"}, Grant: 60})
	car.SetDown(true)
	s := startTrunkSBC(t, fmt.Sprintf(`
trunks:
  - name: t1
    realm: carrier
    targets: [%q]
    credentials: {username: u, password: p}
    register: {enabled: true, expires: 60, retry_min: 200ms, retry_max: 400ms}
    target_timeout: 150ms
`, addr), "")
	eventually(t, 4*time.Second, "two failures", func() bool {
		r := trunkInfo(t, s, "t1").Registration
		return r.State == "failed" && r.Failures >= 2
	})
	r := trunkInfo(t, s, "t1").Registration
	if !strings.Contains(r.LastError, "no answer") || r.Successes != 0 || metricValue(t, s, "sbc_trunk_registered", "trunk=t1") != 0 {
		t.Fatalf("failed state %+v", r)
	}
	if f := metricValue(t, s, "sbc_trunk_register_total", "trunk=t1", "result=fail"); f < 2 {
		t.Fatalf("register fail counter %v", f)
	}
	car.SetDown(false)
	eventually(t, 3*time.Second, "registered after recovery", func() bool { return trunkInfo(t, s, "t1").Registration.State == "registered" })
	if n := len(car.Registers()); n != 1 {
		t.Fatalf("%d registrations, want 1", n)
	}
	if metricValue(t, s, "sbc_trunk_registered", "trunk=t1") != 1 || metricValue(t, s, "sbc_trunk_auth_total", "trunk=t1", "method=REGISTER", "algorithm=SHA-256") != 1 {
		t.Fatal("metrics after recovery")
	}
	// Shutdown removes the binding (Expires: 0).
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = s.Close(ctx)
	regs := car.Registers()
	if last := regs[len(regs)-1]; last.Expires != 0 || last.CallID != regs[0].CallID {
		t.Fatalf("no unregister at shutdown: %+v", regs)
	}
}

// TestTrunkRegisterWrongPassword: a 403 after the challenge is a failure
// with the code in the admin state.
func TestTrunkRegisterWrongPassword(t *testing.T) {
	car, addr := startCarrier(t, testcarrier.Options{Realm: "r", User: "u", Password: "right"})
	s := startTrunkSBC(t, fmt.Sprintf(`
trunks:
  - name: t1
    realm: carrier
    targets: [%q]
    credentials: {username: u, password: wrong}
    register: {enabled: true, retry_min: 5s}
`, addr), "")
	eventually(t, 3*time.Second, "failed", func() bool { return trunkInfo(t, s, "t1").Registration.State == "failed" })
	if r := trunkInfo(t, s, "t1").Registration; r.LastCode != 403 || car.Rejected() != 1 || len(car.Registers()) != 0 {
		t.Fatalf("state %+v, rejected %d", r, car.Rejected())
	}
}

// TestTrunkOptionsDownUp: OPTIONS every 100 ms; silent for down_after
// probes marks the target down (routing skips it: calls get 503), answers
// for up_after probes mark it up again.
func TestTrunkOptionsDownUp(t *testing.T) {
	car, addr := startCarrier(t, testcarrier.Options{})
	caller := testphone.NewLoopback(t)
	s := startTrunkSBC(t, fmt.Sprintf(`
trunks:
  - name: t1
    realm: carrier
    targets: [%q]
    options: {interval: 100ms, timeout: 80ms, down_after: 3, up_after: 2}
routing:
  rules:
    - {name: out, from_realm: enterprise, trunks: [{trunk: t1}]}
`, addr), "")
	state := func() string { return trunkInfo(t, s, "t1").Targets[0].State }
	eventually(t, 2*time.Second, "up", func() bool { return state() == "up" })
	car.SetDown(true)
	downAt := time.Now()
	eventually(t, 2*time.Second, "down", func() bool { return state() == "down" })
	if d := time.Since(downAt); d < 200*time.Millisecond {
		t.Fatalf("marked down after %v: sooner than 3 failed probes", d)
	}
	if metricValue(t, s, "sbc_trunk_target_up", "trunk=t1") != 0 || trunkInfo(t, s, "t1").Up {
		t.Fatal("down not in metric/admin")
	}
	caller.Invite(s.enterprise, "+4930123", "opt-down-1", testphone.TestSDP)
	caller.ExpectResponse(503, sip.INVITE, wait)
	if n := len(car.Invites()); n != 0 {
		t.Fatalf("INVITE sent to a down target")
	}
	car.SetDown(false)
	eventually(t, 2*time.Second, "up again", func() bool { return state() == "up" })
	ti := trunkInfo(t, s, "t1")
	if !ti.Up || ti.Targets[0].Failures < 3 || metricValue(t, s, "sbc_trunk_target_up", "trunk=t1") != 1 ||
		metricValue(t, s, "sbc_trunk_options_total", "trunk=t1", "result=fail") < 3 {
		t.Fatalf("after recovery %+v", ti)
	}
	if car.Options() < 3 {
		t.Fatalf("carrier answered %d OPTIONS", car.Options())
	}
	// Close stops the keepalive goroutines: no OPTIONS after it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = s.Close(ctx)
	n := car.Options()
	time.Sleep(350 * time.Millisecond)
	if car.Options() != n {
		t.Fatalf("OPTIONS after Close: %d -> %d", n, car.Options())
	}
}

// TestTrunkInviteChallenge: the carrier answers leg B's INVITE with 407;
// the SBC ACKs it and re-sends the INVITE with Proxy-Authorization (SHA-256,
// as offered), the same Call-ID, From tag and body and CSeq+1. The numbers
// are converted to the trunk's format in the request-URI, To, From and
// P-Asserted-Identity, and the realm's header rules are applied.
func TestTrunkInviteChallenge(t *testing.T) {
	caller, carrier := testphone.NewLoopback(t), testphone.NewLoopback(t)
	// The carrier realm changes headers by rule. PAI crosses rebuilt: the
	// enterprise realm is trusted as a route's target (the route to the
	// PBX, 127.0.0.1:9, is never used here).
	s := startTrunkSBC(t, fmt.Sprintf(`
trunks:
  - name: t1
    realm: carrier
    targets: [%q]
    domain: carrier.test
    credentials: {username: acct, password: secret, realm: carrier.test}
    normalize:
      outbound: [{strip_prefix: "+49", add_prefix: "0"}, {strip_prefix: "+", add_prefix: "00"}]
routing:
  rules:
    - {name: out, from_realm: enterprise, prefix: "+", trunks: [{trunk: t1}]}
`, carrier.Addr), "127.0.0.1:9", `    headers:
      list: [Subject, X-Internal]
      rules:
        - {action: add, header: X-Trunk-Id, value: t1, methods: [INVITE]}
        - {action: remove, header: X-Internal}
        - {action: replace, header: P-Asserted-Identity, match: "@[^>;]+", value: "@sbc.carrier.test"}
`)
	const paiHost = "pbx.corp.example"
	caller.Send(s.enterprise, fmt.Sprintf(`INVITE sip:+15551234567@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-ch1
		Max-Forwards: 70
		From: "Alice" <sip:+4930111@%s>;tag=ftch1
		To: <sip:+15551234567@%s>
		Call-ID: chal-1
		CSeq: 1 INVITE
		Contact: <sip:alice@%s>
		Subject: kept
		X-Internal: secret
		P-Asserted-Identity: <sip:+4930111@%s>`, s.enterprise, caller.Addr, paiHost, s.enterprise, caller.Addr, paiHost), testphone.TestSDP)
	inv1 := carrier.ExpectRequest(sip.INVITE, wait)
	carrier.Send(inv1.Source(), fmt.Sprintf(`SIP/2.0 407 Proxy Authentication Required
		Via: %s
		From: %s
		To: %s;tag=c407
		Call-ID: %s
		CSeq: %s
		Proxy-Authenticate: Digest realm="carrier.test", nonce="n-sha", algorithm=SHA-256, qop="auth"
		Proxy-Authenticate: Digest realm="carrier.test", nonce="n-md5", algorithm=MD5, qop="auth"`,
		inv1.Via().Value(), inv1.From().Value(), inv1.To().Value(), inv1.CallID().Value(), inv1.CSeq().Value()), "")
	ack := carrier.ExpectRequest(sip.ACK, wait)
	if ack.CSeq().SeqNo != inv1.CSeq().SeqNo || ack.CallID().Value() != inv1.CallID().Value() {
		t.Fatalf("ACK for 407 wrong: %s", ack)
	}
	inv2 := carrier.ExpectRequest(sip.INVITE, wait)
	if inv2.CallID().Value() != inv1.CallID().Value() || inv2.CSeq().SeqNo != inv1.CSeq().SeqNo+1 ||
		inv2.From().Value() != inv1.From().Value() || string(inv2.Body()) != string(inv1.Body()) ||
		inv2.Via().Value() == inv1.Via().Value() {
		t.Fatalf("re-sent INVITE not the same request with CSeq+1 and a new branch:\n%s\n%s", inv1, inv2)
	}
	pa := inv2.GetHeader("Proxy-Authorization")
	if pa == nil {
		t.Fatalf("no Proxy-Authorization:\n%s", inv2)
	}
	cr, err := digest.ParseCredentials(pa.Value())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := digest.Digest(&digest.Challenge{Realm: "carrier.test", Nonce: "n-sha", Algorithm: "SHA-256", QOP: []string{"auth"}},
		digest.Options{Method: "INVITE", URI: inv2.Recipient.String(), Username: "acct", Password: "secret", Cnonce: cr.Cnonce, Count: cr.Nc})
	if cr.Nonce != "n-sha" || cr.Algorithm != "SHA-256" || cr.Response != want.Response || cr.URI != inv2.Recipient.String() {
		t.Fatalf("credentials %+v, want response %s", cr, want.Response)
	}
	// Numbers in the trunk's format.
	if inv2.Recipient.User != "0015551234567" || inv2.To().Address.User != "0015551234567" || inv2.To().Address.Host != "carrier.test" ||
		inv2.From().Address.User != "030111" {
		t.Fatalf("numbers not normalized: R-URI %s To %s From %s", inv2.Recipient.String(), inv2.To().Address.String(), inv2.From().Address.String())
	}
	// PAI user converted, its host rewritten by rule; rules add and remove.
	for h, want := range map[string]string{"P-Asserted-Identity": "<sip:030111@sbc.carrier.test>", "X-Trunk-Id": "t1", "Subject": "kept", "X-Internal": ""} {
		got := ""
		if hv := inv2.GetHeader(h); hv != nil {
			got = hv.Value()
		}
		if got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	carrier.Answer(inv2, 200, "OK", "c200", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	carrier.ExpectRequest(sip.ACK, wait)
	dA := testphone.CallerDialog(ok, s.enterprise)
	caller.Ack(dA, 1, "ch1-ack")
	s.waitState(t, "confirmed")
	if metricValue(t, s, "sbc_trunk_auth_total", "trunk=t1", "method=INVITE", "algorithm=SHA-256") != 1 {
		t.Fatal("auth metric")
	}
	// BYE from the carrier uses the dialog of the authenticated INVITE;
	// the SBC's next CSeq on leg B must be above it.
	dB := testphone.CalleeDialog(inv2, "c200")
	caller.Request(dA, "BYE", 2, "ch1-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	bye := carrier.ExpectRequest(sip.BYE, wait)
	if bye.CSeq().SeqNo <= inv2.CSeq().SeqNo || bye.CallID().Value() != dB.CallID {
		t.Fatalf("BYE CSeq %d not above the INVITE's %d", bye.CSeq().SeqNo, inv2.CSeq().SeqNo)
	}
	carrier.Answer(bye, 200, "OK", "", "")
	s.waitIdle(t)
}

// TestTrunkInviteChallengeOnce: a second challenge is the final answer
// (no loop of re-sends); without credentials the 401 is relayed at once.
func TestTrunkInviteChallengeOnce(t *testing.T) {
	for _, creds := range []bool{true, false} {
		t.Run(fmt.Sprint("creds=", creds), func(t *testing.T) {
			caller, carrier := testphone.NewLoopback(t), testphone.NewLoopback(t)
			cr := ""
			if creds {
				cr = "\n    credentials: {username: a, password: b}"
			}
			s := startTrunkSBC(t, fmt.Sprintf(`
trunks:
  - name: t1
    realm: carrier
    targets: [%q]%s
routing:
  rules:
    - {name: out, from_realm: enterprise, trunks: [{trunk: t1}]}
`, carrier.Addr, cr), "")
			caller.Invite(s.enterprise, "+123", "once-1", testphone.TestSDP)
			challenge := func(inv *sip.Request) {
				carrier.Send(inv.Source(), fmt.Sprintf(`SIP/2.0 401 Unauthorized
					Via: %s
					From: %s
					To: %s;tag=c401
					Call-ID: %s
					CSeq: %s
					WWW-Authenticate: Digest realm="x", nonce="n", algorithm=MD5`,
					inv.Via().Value(), inv.From().Value(), inv.To().Value(), inv.CallID().Value(), inv.CSeq().Value()), "")
				carrier.ExpectRequest(sip.ACK, wait)
			}
			challenge(carrier.ExpectRequest(sip.INVITE, wait))
			if creds {
				inv2 := carrier.ExpectRequest(sip.INVITE, wait)
				if inv2.GetHeader("Authorization") == nil {
					t.Fatal("no Authorization")
				}
				challenge(inv2)
			}
			caller.ExpectResponse(401, sip.INVITE, wait)
			carrier.Quiet(300*time.Millisecond, func(m sip.Message) bool {
				r, ok := m.(*sip.Request)
				return ok && r.Method == sip.INVITE
			}, "another INVITE")
			s.waitIdle(t)
		})
	}
}

// TestTrunkFailover: trunk a answers 503, the call moves to trunk b
// (priority 2) with b's number format; a trunk whose only target is down
// is not tried at all.
func TestTrunkFailover(t *testing.T) {
	a, aAddr := startCarrier(t, testcarrier.Options{InviteCode: 503})
	b, bAddr := startCarrier(t, testcarrier.Options{})
	dead, deadAddr := startCarrier(t, testcarrier.Options{})
	dead.SetDown(true)
	caller := testphone.NewLoopback(t)
	s := startTrunkSBC(t, fmt.Sprintf(`
trunks:
  - {name: dead, realm: carrier, targets: [%q], options: {interval: 100ms, timeout: 80ms, down_after: 1}}
  - {name: a, realm: carrier, targets: [%q], normalize: {outbound: [{strip_prefix: "+", add_prefix: "00"}]}}
  - {name: b, realm: carrier, targets: [%q], normalize: {outbound: [{strip_prefix: "+44", add_prefix: "0"}]}}
routing:
  rules:
    - name: uk
      from_realm: enterprise
      regex: '^\+44'
      trunks: [{trunk: dead, priority: 1}, {trunk: a, priority: 2}, {trunk: b, priority: 3}]
`, deadAddr, aAddr, bAddr), "")
	eventually(t, 2*time.Second, "dead marked down", func() bool { return !trunkInfo(t, s, "dead").Up })
	caller.Invite(s.enterprise, "+442071234567", "fo-1", testphone.TestSDP)
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	if len(dead.Invites()) != 0 || len(a.Invites()) != 1 || len(b.Invites()) != 1 {
		t.Fatalf("INVITEs: dead %d a %d b %d", len(dead.Invites()), len(a.Invites()), len(b.Invites()))
	}
	if u := a.Invites()[0].Recipient.User; u != "00442071234567" {
		t.Fatalf("trunk a got %s", u)
	}
	if u := b.Invites()[0].Recipient.User; u != "02071234567" {
		t.Fatalf("trunk b got %s", u)
	}
	dA := testphone.CallerDialog(ok, s.enterprise)
	caller.Ack(dA, 1, "fo-ack")
	s.waitState(t, "confirmed")
	caller.Request(dA, "BYE", 2, "fo-bye", "")
	caller.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}
