package sipguard

import (
	"strings"
	"testing"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

const shedInvite = `INVITE sip:1000@203.0.113.1 SIP/2.0
Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-1
Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-0
From: <sip:c@203.0.113.10>;tag=f1
To: <sip:1000@203.0.113.1>
Call-ID: shed-1@203.0.113.10
CSeq: 1 INVITE
Content-Length: 0

`

func TestNewInvite(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		want      string // Call-ID, "" for not a new INVITE
	}{
		{"new", shedInvite, "shed-1@203.0.113.10"},
		{"compact headers", strings.NewReplacer("To: ", "t: ", "Call-ID: ", "i: ").Replace(shedInvite), "shed-1@203.0.113.10"},
		{"in dialog", strings.Replace(shedInvite, "To: <sip:1000@203.0.113.1>", "To: <sip:1000@203.0.113.1>;tag=abc", 1), ""},
		{"tag in upper case", strings.Replace(shedInvite, "To: <sip:1000@203.0.113.1>", "To: <sip:1000@203.0.113.1>;TAG=abc", 1), ""},
		{"not an INVITE", strings.Replace(shedInvite, "INVITE sip", "OPTIONS sip", 1), ""},
		{"no To", strings.Replace(shedInvite, "To: <sip:1000@203.0.113.1>\n", "", 1), ""},
		{"no Call-ID", strings.Replace(shedInvite, "Call-ID: shed-1@203.0.113.10\n", "", 1), ""},
		{"bad To", strings.Replace(shedInvite, "To: <sip:1000@203.0.113.1>", "To: <sip:1000@203.0.113.1", 1), ""},
		{"truncated", shedInvite[:60], ""},
		{"empty", "", ""},
	} {
		cid, ok := NewInvite(crlf(c.msg))
		if ok != (c.want != "") || string(cid) != c.want {
			t.Errorf("%s: NewInvite = %q, %v; want %q", c.name, cid, ok, c.want)
		}
	}
}

func TestShedResponseAndItsAck(t *testing.T) {
	res := string(ShedResponse(crlf(shedInvite), 3))
	for _, want := range []string{
		"SIP/2.0 503 Service Unavailable\r\n",
		"Via: SIP/2.0/UDP 203.0.113.10:5060;branch=z9hG4bK-1\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-0\r\n",
		"From: <sip:c@203.0.113.10>;tag=f1\r\n",
		"To: <sip:1000@203.0.113.1>;tag=shed",
		"Call-ID: shed-1@203.0.113.10\r\nCSeq: 1 INVITE\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n",
	} {
		if !strings.Contains(res, want) {
			t.Errorf("503 lacks %q:\n%s", want, res)
		}
	}
	if again := string(ShedResponse(crlf(shedInvite), 3)); again != res {
		t.Errorf("a retransmitted INVITE gets another answer:\n%s", again)
	}
	// The caller's ACK copies the 503's To (RFC 3261 17.1.1.3).
	i := strings.Index(res, "To: ")
	to := res[i : i+strings.Index(res[i:], "\r\n")]
	ack := strings.NewReplacer("INVITE sip", "ACK sip", "To: <sip:1000@203.0.113.1>", to, "CSeq: 1 INVITE", "CSeq: 1 ACK").Replace(string(crlf(shedInvite)))
	if !IsShedAck([]byte(ack)) {
		t.Errorf("the 503's ACK is not recognized:\n%s", ack)
	}
	for name, msg := range map[string]string{
		"an ACK of the SBC's own answers": strings.Replace(ack, ";tag=shed", ";tag=5a9c", 1),
		"a BYE with the shed tag":         strings.Replace(ack, "ACK sip", "BYE sip", 1),
		"an ACK without a To":             strings.Replace(ack, to+"\r\n", "", 1),
	} {
		if IsShedAck([]byte(msg)) {
			t.Errorf("%s taken for a shed ACK", name)
		}
	}
	if ShedResponse(crlf(strings.Replace(shedInvite, "INVITE sip", "ACK sip", 1)), 1) != nil {
		t.Error("an ACK got an answer")
	}
	if got := string(StatelessResponse(crlf(shedInvite), 400, "")); strings.Contains(got, "tag=shed") || strings.Contains(got, "Retry-After") {
		t.Errorf("StatelessResponse changed:\n%s", got)
	}
}

// FuzzShed: the pre-parser shed helpers on hostile input never panic and
// stay bounded.
func FuzzShed(f *testing.F) {
	f.Add(crlf(shedInvite))
	f.Add([]byte("INVITE x SIP/2.0\r\nt: <sip:a@b>;tag\r\n\r\n"))
	f.Add([]byte("ACK sip:a@b SIP/2.0\r\nTo: ;tag=shed\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		NewInvite(msg)
		IsShedAck(msg)
		if res := ShedResponse(msg, 1); len(res) > len(msg)+256 {
			t.Fatalf("answer of %d bytes to %d", len(res), len(msg))
		}
	})
}
