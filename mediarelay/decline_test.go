package mediarelay

import (
	"strings"
	"testing"
)

// Decline answers every m= line with port 0 from the SBC's own address on
// the offer's leg, and allocates nothing.
func TestDeclineRefusesEveryStream(t *testing.T) {
	a := newTestAnchor(t, 0)
	offer := "v=0\r\no=far 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
	ref := CallRef{ID: "dec", Realms: [2]string{"carrier", "pbx"}}
	got, err := a.Decline(ref, SideB, []byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	sess, err := ParseSDP(got)
	if err != nil {
		t.Fatalf("declining answer does not parse: %v\n%s", err, got)
	}
	if len(sess.Media) != 2 {
		t.Fatalf("%d m= lines, want the offer's 2:\n%s", len(sess.Media), got)
	}
	for i, m := range sess.Media {
		if m.Port != 0 {
			t.Errorf("m= line %d has port %d, want 0 (refused)", i, m.Port)
		}
	}
	if strings.Contains(string(got), "192.0.2.9") {
		t.Errorf("the answer carries the offerer's address:\n%s", got)
	}
	if n := a.realms["carrier"].pool.InUse() + a.realms["pbx"].pool.InUse(); n != 0 {
		t.Errorf("%d ports taken by a decline", n)
	}
	if _, ok := a.State("dec"); ok {
		t.Error("a decline made the call known to the anchor")
	}
	if _, err := a.Decline(ref, SideB, []byte("not sdp")); err == nil {
		t.Error("an unreadable offer declined without an error")
	}
}
