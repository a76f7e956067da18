package sbc_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/internal/syncbuf"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/internal/testphone"
	"github.com/edgesbc/edgesbc/mediarelay"
)

func savpFor(e *testphone.RTPEnd, version int, k testphone.SRTPKey) string {
	a := e.Addr()
	return fmt.Sprintf("v=0\r\no=phone 78 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:%s\r\n",
		version, a.Addr(), a.Addr(), a.Port(), k.Attr())
}

func sbcCrypto(t *testing.T, m sip.Message) testphone.SRTPKey {
	t.Helper()
	s, err := mediarelay.ParseSDP(m.Body())
	if err != nil || len(s.Media) == 0 || len(s.Media[0].Crypto) != 1 {
		t.Fatalf("no single a=crypto in the SBC's SDP: %v\n%s", err, m.Body())
	}
	k, err := testphone.ParseSRTPKey(s.Media[0].Crypto[0])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// An SRTP call (carrier leg SRTP, PBX leg plain) taken over by a second
// node from the store alone decrypts and encrypts at once with the keys
// negotiated on the first node (no re-key, no new SDP), across a sequence
// wrap that happened on the first node (the rollover counters are in the
// record), both ways, intact, and never in the clear on the SRTP leg. No
// key appears in either node's log, the admin API or the metrics.
func TestTakeoverRestoresSRTPCall(t *testing.T) {
	store := newMemStore()
	caller, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	aRTP, bRTP := loopRTP(t), loopRTP(t)
	cp, ep := freePort(t), freePort(t)
	sbcA := fmt.Sprintf("127.0.0.1:%d", cp)
	var logs syncbuf.Buffer
	req := mediarelay.SRTPPolicy{Mode: mediarelay.SRTPRequired}
	n1 := startHANodeWith(t, cp, ep, callee.Addr, store, false, req, &logs)

	keyA := testphone.NewSRTPKey(1)
	if err := aRTP.SetSendKey(&keyA); err != nil {
		t.Fatal(err)
	}
	caller.Invite(sbcA, "1000", "ha-srtp-1", savpFor(aRTP, 1, keyA))
	inv := callee.ExpectRequest(sip.INVITE, wait)
	if strings.Contains(string(inv.Body()), "crypto") {
		t.Fatalf("a=crypto toward the plain PBX:\n%s", inv.Body())
	}
	bTo := sdpPort(t, inv)
	callee.Answer(inv, 200, "OK", "ct1", sdpFor(bRTP, 1))
	ok := caller.ExpectResponse(200, sip.INVITE, wait)
	aTo := sdpPort(t, ok)
	keyS := sbcCrypto(t, ok)
	if err := aRTP.SetRecvKey(&keyS); err != nil {
		t.Fatal(err)
	}
	dA := testphone.CallerDialog(ok, sbcA)
	caller.Ack(dA, 1, "ha-ack1")
	callee.ExpectRequest(sip.ACK, wait)
	dB := testphone.CalleeDialog(inv, "ct1")

	// 40 packets each way from seq 65510: both directions wrap (ROC 1).
	flow(t, aRTP, bRTP, aTo, bTo, 0xA1, 0xB1, 65510, 40)
	id := n1.Calls()[0].ID
	waitFor(t, "a record with the SRTP state after the wrap", func() bool {
		st, ok := n1.anchor.State(id)
		rec := store.get("call/" + id)
		return ok && len(st.SRTP) > 0 && rec != nil && contains(rec, st.SRTP) &&
			st.Streams[0].Sides[0].LatchRTP.IsValid() && st.Streams[0].Sides[1].LatchRTP.IsValid()
	})

	n1.Deactivate()
	n1.close()
	n2 := startHANodeWith(t, cp, ep, callee.Addr, store, true, req, &logs)
	if restored, bad := activate(n2); restored != 1 || bad != 0 {
		t.Fatalf("restored %d calls, %d bad records", restored, bad)
	}
	// Same SSRCs, sequence going on past the wrap: the carrier phone's
	// contexts (ROC 1) and the restored node's must agree.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = aRTP.Send(aTo, 0xA1, 14, 40, 2*time.Millisecond) }()
	go func() { defer wg.Done(); _ = bRTP.Send(bTo, 0xB1, 14, 40, 2*time.Millisecond) }()
	wg.Wait()
	bRTP.WaitFor(0xA1, 80, 2*time.Second)
	aRTP.WaitFor(0xB1, 80, 2*time.Second)
	for _, c := range []struct {
		e    *testphone.RTPEnd
		ssrc uint32
	}{{bRTP, 0xA1}, {aRTP, 0xB1}} {
		if err := c.e.CheckStream(c.ssrc, 65510, 80); err != nil {
			t.Fatalf("after the takeover: %v", err)
		}
	}
	if n, c := aRTP.AuthFailed(), aRTP.ClearSeen(); n != 0 || c != 0 {
		t.Fatalf("at the SRTP caller: %d packets failed to decrypt, %d came in the clear", n, c)
	}
	// A tampered packet is still dropped on the new node.
	b, err := aRTP.Packet(0xA1, 60)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-15] ^= 1
	_ = aRTP.SendRaw(aTo, b)
	waitFor(t, "the tampered packet counted", func() bool {
		return strings.Contains(get(t, n2, "/api/v1/calls/"+id), `"srtp_auth_failed":1`)
	})

	// No key anywhere an operator looks.
	out := logs.String() + get(t, n2, "/api/v1/calls") + get(t, n2, "/api/v1/calls/"+id) + get(t, n2, "/metrics")
	for _, k := range []testphone.SRTPKey{keyA, keyS} {
		if strings.Contains(out, k.Inline()) || strings.Contains(out, base64.RawStdEncoding.EncodeToString(k.KeySalt)) ||
			strings.Contains(out, strings.Trim(fmt.Sprint(k.KeySalt[:16]), "[]")) {
			t.Fatal("an SRTP key appears in a log, the admin API or the metrics")
		}
	}

	callee.Request(dB, "BYE", 1, "ha-bye", "")
	callee.ExpectResponse(200, sip.BYE, wait)
	bye := caller.ExpectRequest(sip.BYE, wait)
	caller.Answer(bye, 200, "OK", "", "")
	waitFor(t, "the call to end", func() bool { return n2.ActiveCalls() == 0 })
	waitFor(t, "the record to go", func() bool { return store.len() == 0 })
}

func get(t *testing.T, n *haNode, path string) string {
	t.Helper()
	w := httptest.NewRecorder()
	n.AdminHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(w.Result().Body)
	return string(b)
}
