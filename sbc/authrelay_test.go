package sbc_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/edgesbc/edgesbc/internal/testcarrier"
	"github.com/edgesbc/edgesbc/internal/testphone"
)

// pbxInvite sends the PBX's INVITE (cseq 1, or its authenticated retry
// with cseq 2 and an extra header) to the SBC's enterprise face, for
// called number user at ruriHost.
func pbxInvite(pbx *testphone.Phone, sbcAddr, ruriHost, user, callID string, cseq int, extra string) {
	head := fmt.Sprintf(`INVITE sip:%s@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d;rport
		Max-Forwards: 70
		From: "PBX" <sip:200@%s>;tag=pbx-%s
		To: <sip:%s@%s>
		Call-ID: %s
		CSeq: %d INVITE
		Contact: <sip:200@%s>`, user, ruriHost, pbx.Addr, callID, cseq, pbx.Addr, callID, user, ruriHost, callID, cseq, pbx.Addr)
	if extra != "" {
		head += "\n" + extra
	}
	pbx.Send(sbcAddr, head, testphone.TestSDP)
}

// A carrier challenges the PBX's call and the trunk holds no credentials:
// the 407 reaches the PBX with its Proxy-Authenticate, and the PBX's retry
// (same Call-ID, CSeq + 1, Proxy-Authorization) leaves on leg B's dialog
// of the first try (same Call-ID and From tag, CSeq + 1) with the
// credentials as the PBX wrote them.
func TestAuthChallengeRelayedRetrySameLegB(t *testing.T) {
	for _, code := range []int{401, 407} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			pbx, carrier, callee := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
			s := startSBC(t, []string{callee.Addr}, []string{carrier.Addr})
			chName, crName := "WWW-Authenticate", "Authorization"
			if code == 407 {
				chName, crName = "Proxy-Authenticate", "Proxy-Authorization"
			}
			cid := fmt.Sprintf("pbx-auth-%d", code)
			pbxInvite(pbx, s.enterprise, s.enterprise, "+4930123", cid, 1, "")
			inv1 := carrier.ExpectRequest(sip.INVITE, wait)
			chal := `Digest realm="carrier.example", nonce="c4rr13r-n0nc3", algorithm=MD5, qop="auth"`
			carrier.Send(inv1.Source(), fmt.Sprintf("SIP/2.0 %d Challenge\nVia: %s\nFrom: %s\nTo: %s;tag=car-1\nCall-ID: %s\nCSeq: %s\n%s: %s\nX-Carrier-Secret: %s",
				code, inv1.Via().Value(), inv1.From().Value(), inv1.To().Value(), inv1.CallID().Value(), inv1.CSeq().Value(), chName, chal, carrier.Addr), "")
			carrier.ExpectRequest(sip.ACK, wait) // the SBC's transaction ACKs the challenge

			res := pbx.ExpectResponse(code, sip.INVITE, wait)
			if hs := res.GetHeaders(chName); len(hs) != 1 || hs[0].Value() != chal {
				t.Fatalf("%d to the PBX carries %s %v, want the carrier's %q:\n%s", code, chName, hs, chal, res)
			}
			for _, leak := range []string{carrier.Addr, inv1.CallID().Value(), "car-1"} {
				if strings.Contains(res.String(), leak) {
					t.Errorf("relayed %d leaks %q:\n%s", code, leak, res)
				}
			}
			pbx.Send(s.enterprise, fmt.Sprintf(`ACK sip:+4930123@%s SIP/2.0
				Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s-1;rport
				Max-Forwards: 70
				From: "PBX" <sip:200@%s>;tag=pbx-%s
				To: %s
				Call-ID: %s
				CSeq: 1 ACK`, s.enterprise, pbx.Addr, cid, pbx.Addr, cid, res.To().Value(), cid), "")

			cred := `Digest username="acct", realm="carrier.example", nonce="c4rr13r-n0nc3", uri="sip:+4930123@` + s.enterprise + `", response="0123456789abcdef0123456789abcdef", algorithm=MD5, qop=auth, nc=00000001, cnonce="c1"`
			pbxInvite(pbx, s.enterprise, s.enterprise, "+4930123", cid, 2, crName+": "+cred)
			inv2 := carrier.ExpectRequest(sip.INVITE, wait)
			if inv2.CallID().Value() != inv1.CallID().Value() {
				t.Errorf("retry on leg B Call-ID %s, want the first try's %s", inv2.CallID().Value(), inv1.CallID().Value())
			}
			if a, b := testphone.FromTag(inv2.From()), testphone.FromTag(inv1.From()); a != b {
				t.Errorf("retry From tag %s, want the first try's %s", a, b)
			}
			if got, want := inv2.CSeq().SeqNo, inv1.CSeq().SeqNo+1; got != want {
				t.Errorf("retry CSeq %d, want %d", got, want)
			}
			if hs := inv2.GetHeaders(crName); len(hs) != 1 || hs[0].Value() != cred {
				t.Errorf("retry carries %s %v, want the PBX's %q", crName, hs, cred)
			}
			if inv2.Via().Params.GetOr("branch", "") == inv1.Via().Params.GetOr("branch", "") {
				t.Error("retry reuses the first INVITE's branch: it is a new transaction")
			}
			carrier.Answer(inv2, 200, "OK", "car-2", testphone.TestSDP)
			ok := pbx.ExpectResponse(200, sip.INVITE, wait)
			dA := testphone.CallerDialog(ok, s.enterprise)
			pbx.Ack(dA, 2, cid+"-ack")
			carrier.ExpectRequest(sip.ACK, wait)
			s.waitState(t, "confirmed")
			pbx.Request(dA, "BYE", 3, cid+"-bye", "")
			pbx.ExpectResponse(200, sip.BYE, wait)
			bye := carrier.ExpectRequest(sip.BYE, wait)
			carrier.Answer(bye, 200, "OK", "", "")
			s.waitIdle(t)
			s.waitCalls(t, "challenged", 1)
			s.waitCalls(t, "bye_a", 1)
		})
	}
}

// A retry that is not the challenged call's (another From tag) gets a
// leg B of its own, without the credentials: they were not asked for on
// that dialog.
func TestAuthRetryOfAnotherDialogNotResumed(t *testing.T) {
	pbx, carrier, callee := testphone.NewLoopback(t), testphone.NewLoopback(t), testphone.NewLoopback(t)
	s := startSBC(t, []string{callee.Addr}, []string{carrier.Addr})
	pbxInvite(pbx, s.enterprise, s.enterprise, "555", "other-dialog", 1, "")
	inv1 := carrier.ExpectRequest(sip.INVITE, wait)
	carrier.Send(inv1.Source(), fmt.Sprintf("SIP/2.0 401 Unauthorized\nVia: %s\nFrom: %s\nTo: %s;tag=car-1\nCall-ID: %s\nCSeq: %s\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\"",
		inv1.Via().Value(), inv1.From().Value(), inv1.To().Value(), inv1.CallID().Value(), inv1.CSeq().Value()), "")
	pbx.ExpectResponse(401, sip.INVITE, wait)
	// Same Call-ID, another From tag: not the dialog that was challenged.
	pbx.Send(s.enterprise, fmt.Sprintf(`INVITE sip:555@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-other-2;rport
		Max-Forwards: 70
		From: <sip:200@%s>;tag=someone-else
		To: <sip:555@%s>
		Call-ID: other-dialog
		CSeq: 2 INVITE
		Authorization: Digest username="x", realm="r", nonce="n", uri="sip:555@%s", response="00"
		Contact: <sip:200@%s>`, s.enterprise, pbx.Addr, pbx.Addr, s.enterprise, s.enterprise, pbx.Addr), testphone.TestSDP)
	inv2 := carrier.ExpectRequest(sip.INVITE, wait)
	if inv2.CallID().Value() == inv1.CallID().Value() {
		t.Error("another dialog's INVITE took the challenged leg B's Call-ID")
	}
	if inv2.GetHeader("Authorization") != nil {
		t.Errorf("credentials crossed outside the challenge path:\n%s", inv2)
	}
	carrier.Answer(inv2, 486, "Busy Here", "car-2", "")
	pbx.ExpectResponse(486, sip.INVITE, wait)
	s.waitIdle(t)
}

// Against a carrier that ties its nonce to the Call-ID and checks the
// digest for real: the PBX computes its answer from the relayed challenge
// and the call goes through. The PBX addresses the carrier's URI (the SBC
// is its outbound proxy), so the digest's uri is leg B's request-URI.
func TestAuthRelayCallIDBoundNonce(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	car, err := testcarrier.Start(conn, testcarrier.Options{Realm: "carrier.example", User: "pbx-acct", Password: "pbx-secret",
		ChallengeInvite: true, NonceBoundToCallID: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(car.Close)
	pbx, callee := testphone.NewLoopback(t), testphone.NewLoopback(t)
	carAddr := conn.LocalAddr().String()
	s := startSBC(t, []string{callee.Addr}, []string{carAddr})

	pbxInvite(pbx, s.enterprise, carAddr, "+4930999", "bound-nonce", 1, "")
	res := pbx.ExpectResponse(407, sip.INVITE, wait)
	h := res.GetHeader("Proxy-Authenticate")
	if h == nil {
		t.Fatalf("407 to the PBX has no Proxy-Authenticate:\n%s", res)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		t.Fatalf("407 to the PBX: %v\n%s", err, res)
	}
	pbx.Send(s.enterprise, fmt.Sprintf(`ACK sip:+4930999@%s SIP/2.0
		Via: SIP/2.0/UDP %s;branch=z9hG4bK-bound-nonce-1;rport
		Max-Forwards: 70
		From: "PBX" <sip:200@%s>;tag=pbx-bound-nonce
		To: %s
		Call-ID: bound-nonce
		CSeq: 1 ACK`, carAddr, pbx.Addr, pbx.Addr, res.To().Value()), "")
	cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: "sip:+4930999@" + carAddr, Username: "pbx-acct", Password: "pbx-secret"})
	if err != nil {
		t.Fatal(err)
	}
	pbxInvite(pbx, s.enterprise, carAddr, "+4930999", "bound-nonce", 2, "Proxy-Authorization: "+cred.String())
	ok := pbx.ExpectResponse(200, sip.INVITE, wait)
	invs := car.Invites()
	if len(invs) != 2 || invs[0].CallID().Value() != invs[1].CallID().Value() {
		t.Fatalf("carrier saw %d INVITEs, want 2 on one Call-ID", len(invs))
	}
	if got := car.Verified(); got != 1 {
		t.Fatalf("carrier verified %d digests, want 1", got)
	}
	dA := testphone.CallerDialog(ok, s.enterprise)
	pbx.Ack(dA, 2, "bound-nonce-ack")
	s.waitState(t, "confirmed")
	pbx.Request(dA, "BYE", 3, "bound-nonce-bye", "")
	pbx.ExpectResponse(200, sip.BYE, wait)
	s.waitIdle(t)
}
