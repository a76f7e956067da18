package sipguard

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func parseResponse(t *testing.T, b []byte) *sip.Response {
	t.Helper()
	if b == nil {
		t.Fatal("StatelessResponse returned nil")
	}
	m, err := sip.NewParser().ParseSIP(b)
	if err != nil {
		t.Fatalf("sipgo cannot parse the answer: %v\n%s", err, b)
	}
	r, ok := m.(*sip.Response)
	if !ok {
		t.Fatalf("answer is a %T\n%s", m, b)
	}
	return r
}

func headerValues(m sip.Message, name string) []string {
	var out []string
	for _, h := range m.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}

func TestStatelessResponseMissingTo(t *testing.T) {
	req := []byte(without(invite, "To"))
	v := Check(req, Limits{})
	if v.Action != Reject || v.Status != 400 || v.Reason != "Missing To" {
		t.Fatalf("Check: %+v", v)
	}
	b := StatelessResponse(req, v.Status, v.Reason)
	r := parseResponse(t, b)
	if r.StatusCode != 400 || r.Reason != "Missing To" {
		t.Errorf("status line %d %q", r.StatusCode, r.Reason)
	}
	want := map[string]string{
		"Via":            "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport",
		"From":           "\"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774",
		"Call-ID":        "a84b4c76e66710@pc33.atlanta.example.com",
		"CSeq":           "314159 INVITE",
		"Content-Length": "0",
	}
	for name, w := range want {
		if !strings.Contains(string(b), name+": "+w+"\r\n") {
			t.Errorf("answer lacks %s: %s\n%s", name, w, b)
		}
	}
	if r.To() != nil {
		t.Errorf("answer has a To although the request had none:\n%s", b)
	}
	if r.Via() == nil || r.Via().Params.GetOr("branch", "") != "z9hG4bK776asdhds" {
		t.Errorf("sipgo sees no top Via branch:\n%s", b)
	}
	if r.CSeq() == nil || r.CSeq().SeqNo != 314159 || r.CSeq().MethodName != sip.INVITE {
		t.Errorf("sipgo sees CSeq %v", r.CSeq())
	}
	if len(r.Body()) != 0 {
		t.Errorf("body %q", r.Body())
	}
}

func TestStatelessResponseViaOrder(t *testing.T) {
	req := insert(invite, "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1, SIP/2.0/TCP p2.example.com;branch=z9hG4bKp2\r\n"+
		"v: SIP/2.0/UDP\r\n p3.example.com;branch=z9hG4bKp3\r\n")
	b := StatelessResponse([]byte(req), 400, "Bad Request")
	r := parseResponse(t, b)
	got := headerValues(r, "Via")
	want := []string{
		"SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1",
		"SIP/2.0/TCP p2.example.com;branch=z9hG4bKp2",
		"SIP/2.0/UDP p3.example.com;branch=z9hG4bKp3",
		"SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Via values\n got %q\nwant %q\n%s", got, want, b)
	}
	if !strings.Contains(string(b), "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1, SIP/2.0/TCP p2.example.com;branch=z9hG4bKp2\r\n"+
		"Via: SIP/2.0/UDP p3.example.com;branch=z9hG4bKp3\r\n") {
		t.Errorf("Via lines not copied in order, folds not collapsed:\n%s", b)
	}
}

func TestStatelessResponseToTag(t *testing.T) {
	b := StatelessResponse([]byte(invite), 400, "")
	r := parseResponse(t, b)
	if r.Reason != "Bad Request" {
		t.Errorf("default reason %q", r.Reason)
	}
	if v := Check(b, Limits{}); v.Action != Accept {
		t.Errorf("our own complete answer fails Check: %+v\n%s", v, b)
	}
	tag, ok := r.To().Params.Get("tag")
	if !ok || tag == "" {
		t.Fatalf("no To tag added:\n%s", b)
	}
	if again := StatelessResponse([]byte(invite), 400, ""); string(again) != string(b) {
		t.Error("a retransmission gets a different answer")
	}
	tagged := with(invite, "To: Bob <sip:bob@biloxi.example.com>", "To: Bob <sip:bob@biloxi.example.com>;tag=abc")
	r = parseResponse(t, StatelessResponse([]byte(tagged), 400, ""))
	if tag, _ := r.To().Params.Get("tag"); tag != "abc" {
		t.Errorf("existing To tag changed to %q", tag)
	}
}

func TestStatelessResponseTolerant(t *testing.T) {
	// Unparseable To and CSeq are left out; the rest still goes back.
	req := with(with(invite, "To: Bob <sip:bob@biloxi.example.com>", `To: "Bob <sip:bob@biloxi.example.com>`),
		"CSeq: 314159", "CSeq: 99999999999")
	b := string(StatelessResponse([]byte(req), 400, "Bad\r\nInjected: yes"))
	for _, bad := range []string{"\r\nTo:", "\r\nCSeq:", "\r\nInjected"} {
		if strings.Contains(b, bad) {
			t.Errorf("answer contains %q:\n%s", bad, b)
		}
	}
	if !strings.HasPrefix(b, "SIP/2.0 400 BadInjected: yes\r\nVia: ") || !strings.Contains(b, "\r\nFrom: ") {
		t.Errorf("answer:\n%s", b)
	}
}

func TestStatelessResponseNil(t *testing.T) {
	cases := map[string]string{
		"no Via":        without(invite, "Via"),
		"a response":    okResponse,
		"ACK":           with(invite, "INVITE sip:", "ACK sip:"),
		"garbage":       garbage(300, 3),
		"empty":         "",
		"no line end":   "INVITE sip:a@b SIP/2.0",
		"keepalive":     "\r\n\r\n",
		"Via after end": with(invite, "\r\nVia:", "\r\n\r\nVia:"),
	}
	for name, msg := range cases {
		if b := StatelessResponse([]byte(msg), 400, "Bad Request"); b != nil {
			t.Errorf("%s: got an answer:\n%s", name, b)
		}
	}
	if b := StatelessResponse([]byte(invite), 99, "x"); b != nil {
		t.Errorf("status 99 answered:\n%s", b)
	}
}

func TestStatelessResponseBounded(t *testing.T) {
	// Compact bare-LF Vias grow when copied; the answer must stay bounded.
	req := "X sip:a@b SIP/2.0\n" + strings.Repeat("v:SIP/2.0/UDP h\n", 500) + "\n"
	b := StatelessResponse([]byte(req), 400, strings.Repeat("r", 500))
	if b == nil || len(b) > len(req)+256 {
		t.Fatalf("answer is %d bytes for a %d-byte request", len(b), len(req))
	}
	if !strings.HasSuffix(string(b), "Content-Length: 0\r\n\r\n") {
		t.Errorf("answer does not end properly: %q", b[len(b)-40:])
	}
}
