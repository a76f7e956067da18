package sbc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
	"github.com/edgesbc/edgesbc/sbc"
)

// memStore is the in-memory stand-in for ha.Node: what the real store
// replicates is opaque bytes, which is all this test needs. The failover
// across real Raft processes is test/ha.
type memStore struct {
	mu   sync.Mutex
	m    map[string][]byte
	puts int
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Put(k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	s.puts++
	return nil
}

func (s *memStore) Delete(k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memStore) Range(f func(k string, v []byte) bool) {
	s.mu.Lock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		s.mu.Lock()
		v, ok := s.m[k]
		s.mu.Unlock()
		if ok && !f(k, v) {
			return
		}
	}
}

func (s *memStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *memStore) get(k string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k]
}

// haNode is one SBC with anchored media on loopback, on fixed ports so a
// second node can take over the same addresses.
type haNode struct {
	*sbc.SBC
	anchor *mediarelay.Anchor
	once   sync.Once
}

// activate makes n the active node as sbcd's HA follower does (ha.Follow
// order in cmd/sbcd/internal/failover): restore the calls, then serve SIP.
func activate(n *haNode) (restored, bad int) {
	restored, bad = n.TakeOver()
	n.Serve()
	return restored, bad
}

func startHANode(t *testing.T, cp, ep int, pbx string, store sbc.CallStore, standby bool) *haNode {
	t.Helper()
	return startHANodeWith(t, cp, ep, pbx, store, standby, mediarelay.SRTPPolicy{}, nil)
}

// startHANodeWith is startHANode with the carrier realm's SRTP policy and,
// when logw is set, the debug log written there.
func startHANodeWith(t *testing.T, cp, ep int, pbx string, store sbc.CallStore, standby bool, carrierSRTP mediarelay.SRTPPolicy, logw io.Writer) *haNode {
	t.Helper()
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d", media: {ports: 31100-31109}}
  - {name: enterprise, listen: "127.0.0.1:%d", media: {ports: 31200-31209}}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["%s"], target_timeout: 400ms}
`, cp, ep, pbx)
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var w io.Writer = io.Discard
	if os.Getenv("SBC_TEST_LOG") != "" {
		w = os.Stderr
	}
	if logw != nil {
		w = logw
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	lo := netip.MustParseAddr("127.0.0.1")
	anchor, err := mediarelay.NewAnchor(mediarelay.AnchorConfig{
		Realms: []mediarelay.RealmMedia{
			{Name: "carrier", Addr: lo, MinPort: 31100, MaxPort: 31109, SRTP: carrierSRTP},
			{Name: "enterprise", Addr: lo, MinPort: 31200, MaxPort: 31209},
		},
		Timeout: time.Minute, Logger: log, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sbc.New(cfg, sbc.Options{Logger: log, Media: anchor, Registry: reg, Store: store, Standby: standby})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	n := &haNode{SBC: s, anchor: anchor}
	t.Cleanup(n.close)
	return n
}

func (n *haNode) close() {
	n.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = n.Close(ctx)
		n.anchor.Close()
	})
}

func loopRTP(t *testing.T) *testphone.RTPEnd {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return testphone.NewRTPEnd(t, c)
}

func sdpFor(e *testphone.RTPEnd, version int) string {
	a := e.Addr()
	return fmt.Sprintf("v=0\r\no=phone 77 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
		version, a.Addr(), a.Addr(), a.Port())
}

func sdpPort(t *testing.T, m sip.Message) netip.AddrPort {
	t.Helper()
	s, err := mediarelay.ParseSDP(m.Body())
	if err != nil || len(s.Media) == 0 {
		t.Fatalf("SDP: %v\n%s", err, m.Body())
	}
	return netip.AddrPortFrom(s.Media[0].Addr, uint16(s.Media[0].Port))
}

// flow sends n packets each way and waits for all of them.
func flow(t *testing.T, a, b *testphone.RTPEnd, aTo, bTo netip.AddrPort, ssrcA, ssrcB uint32, first uint16, n int) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = a.Send(aTo, ssrcA, first, n, 2*time.Millisecond) }()
	go func() { defer wg.Done(); _ = b.Send(bTo, ssrcB, first, n, 2*time.Millisecond) }()
	wg.Wait()
	b.WaitFor(ssrcA, n, 2*time.Second)
	a.WaitFor(ssrcB, n, 2*time.Second)
	if err := b.CheckStream(ssrcA, first, n); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckStream(ssrcB, first, n); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A call set up on node 1 is taken over by node 2 from the store alone:
// node 1 lets go of it without a word (as a dead node would), node 2
// restores it on the same SIP and media addresses; media flows at once,
// with no new SDP and no re-latching, a re-INVITE after the takeover goes
// through with the right CSeqs, tags and media, and a BYE from the callee
// is answered 200 and ends the caller's leg with the next CSeq of that
// leg. The record goes when the call does.
func TestTakeoverRestoresCall(t *testing.T) {
	store := newMemStore()
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	aRTP, bRTP := loopRTP(t), loopRTP(t)
	cp, ep := freePort(t), freePort(t)
	sbcA := fmt.Sprintf("127.0.0.1:%d", cp)
	n1 := startHANode(t, cp, ep, callee.Addr, store, false)

	caller.Invite(sbcA, "1000", "ha-call-1", sdpFor(aRTP, 1))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	bTo := sdpPort(t, inv)
	callee.Answer(inv, 200, "OK", "ct1", sdpFor(bRTP, 1))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	aTo := sdpPort(t, ok)
	dA := testphone.CallerDialog(ok, sbcA)
	caller.Ack(dA, 1, "ha-ack1")
	callee.ExpectRequest(sip.ACK, wait)
	dB := testphone.CalleeDialog(inv, "ct1")

	flow(t, aRTP, bRTP, aTo, bTo, 0xA1, 0xB1, 100, 20)
	id := n1.Calls()[0].ID
	// The record follows the latching: both sides latched.
	waitFor(t, "a record with both sides latched", func() bool {
		st, ok := n1.anchor.State(id)
		return store.get("call/"+id) != nil && ok && st.Streams[0].Sides[0].LatchRTP.IsValid() && st.Streams[0].Sides[1].LatchRTP.IsValid() &&
			string(store.get("call/"+id)) != "" && recordHasLatch(store.get("call/"+id), aRTP.Addr())
	})

	// Node 1 is fenced: it drops everything and forgets its calls, and
	// keeps the record for whoever takes over.
	n1.Deactivate()
	caller.Send(sbcA, fmt.Sprintf(`OPTIONS sip:%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-fenced
		Max-Forwards: 70
		From: <sip:probe@%s>;tag=p1
		To: <sip:%s>
		Call-ID: fenced-probe
		CSeq: 1 OPTIONS`, sbcA, caller.Addr, caller.Addr, sbcA), "")
	caller.Quiet(300*time.Millisecond, func(sip.Message) bool { return true }, "answer from a fenced node")
	callee.Quiet(10*time.Millisecond, func(sip.Message) bool { return true }, "BYE from a fenced node")
	if store.len() != 1 {
		t.Fatalf("fencing changed the store: %d records", store.len())
	}
	n1.close()

	n2 := startHANode(t, cp, ep, callee.Addr, store, true)
	if restored, bad := activate(n2); restored != 1 || bad != 0 {
		t.Fatalf("restored %d calls, %d bad records", restored, bad)
	}
	if calls := n2.Calls(); len(calls) != 1 || calls[0].ID != id || calls[0].State != "confirmed" {
		t.Fatalf("restored calls: %+v", calls)
	}
	flow(t, aRTP, bRTP, aTo, bTo, 0xA2, 0xB2, 200, 20)

	// re-INVITE from the caller (hold): relayed on leg B with the next CSeq
	// of the old leg B, the right tags, and the old media ports.
	caller.Request(dA, "INVITE", 2, "ha-reinv", sdpFor(aRTP, 2))
	re := callee.ExpectRequest(sip.INVITE, wait)
	if re.CSeq().SeqNo != inv.CSeq().SeqNo+1 || re.CallID().Value() != inv.CallID().Value() || testphone.FromTag(re.From()) != testphone.FromTag(inv.From()) {
		t.Fatalf("re-INVITE on leg B after takeover: CSeq %d (INVITE had %d), Call-ID %s, From tag %s",
			re.CSeq().SeqNo, inv.CSeq().SeqNo, re.CallID().Value(), testphone.FromTag(re.From()))
	}
	if tt, _ := re.To().Params.Get("tag"); tt != "ct1" {
		t.Fatalf("re-INVITE To tag %q, want the callee's", tt)
	}
	if got := sdpPort(t, re); got != bTo {
		t.Fatalf("media moved on re-INVITE after takeover: %v, was %v", got, bTo)
	}
	callee.Answer(re, 200, "OK", "", sdpFor(bRTP, 2))
	ok2 := caller.ExpectResponse(200, sip.INVITE, wait)
	if got := sdpPort(t, ok2); got != aTo {
		t.Fatalf("media moved for the caller: %v, was %v", got, aTo)
	}
	caller.Ack(dA, 2, "ha-ack2")
	callee.ExpectRequest(sip.ACK, wait)
	flow(t, aRTP, bRTP, aTo, bTo, 0xA3, 0xB3, 300, 20)

	// BYE from the callee ends both legs on node 2.
	callee.Request(dB, "BYE", 1, "ha-bye", "")
	callee.ExpectResponse(200, sip.BYE, wait)
	bye := caller.ExpectRequest(sip.BYE, wait)
	if tt, _ := bye.From().Params.Get("tag"); tt != dA.RemoteTag || bye.CallID().Value() != "ha-call-1" {
		t.Fatalf("BYE to the caller: From tag %q (want %q), Call-ID %s", tt, dA.RemoteTag, bye.CallID().Value())
	}
	caller.Answer(bye, 200, "OK", "", "")
	waitFor(t, "the call to end", func() bool { return n2.ActiveCalls() == 0 })
	waitFor(t, "the record to go", func() bool { return store.len() == 0 })
}

func recordHasLatch(rec []byte, ap netip.AddrPort) bool {
	b, _ := ap.MarshalBinary()
	return len(b) > 0 && contains(rec, b)
}

func contains(h, n []byte) bool {
	for i := 0; i+len(n) <= len(h); i++ {
		if string(h[i:i+len(n)]) == string(n) {
			return true
		}
	}
	return false
}
