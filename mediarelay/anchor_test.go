package mediarelay

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func phoneSDP(ip string, port int) []byte {
	return []byte(fmt.Sprintf("v=0\r\no=phone 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n", ip, ip, port))
}

func newTestAnchor(t *testing.T, timeout time.Duration) *Anchor {
	t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	a, err := NewAnchor(AnchorConfig{
		Realms: []RealmMedia{
			{Name: "carrier", Addr: lo, MinPort: 31000, MaxPort: 31003},
			{Name: "pbx", Addr: lo, MinPort: 32000, MaxPort: 32003, Codecs: []string{"PCMU"}},
		},
		Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// Offer and answer are rewritten onto the SBC's ports in the realm each
// goes to; ports come from that realm's pool and go back at End; an empty
// pool refuses the offer with ErrPortsExhausted.
func TestAnchorOfferAnswerAndPorts(t *testing.T) {
	a := newTestAnchor(t, time.Minute)
	call := func(id string) CallRef { return CallRef{ID: id, Realms: [2]string{"carrier", "pbx"}} }

	out, err := a.Offer(call("c1"), SideA, phoneSDP("192.0.2.10", 4000))
	if err != nil {
		t.Fatal(err)
	}
	off, _ := ParseSDP(out)
	if m := off.Media[0]; m.Addr.String() != "127.0.0.1" || m.Port < 32000 || m.Port > 32003 {
		t.Fatalf("offer to the pbx realm: %v:%d\n%s", m.Addr, m.Port, out)
	}
	if strings.Contains(string(out), "192.0.2.10") || strings.Contains(string(out), "telephone-event") {
		t.Fatalf("offer leaks the caller or ignores the pbx codec list:\n%s", out)
	}
	ans, err := a.Answer(call("c1"), SideB, phoneSDP("198.51.100.10", 5000))
	if err != nil {
		t.Fatal(err)
	}
	as, _ := ParseSDP(ans)
	if m := as.Media[0]; m.Port < 31000 || m.Port > 31003 || strings.Contains(string(ans), "198.51.100.10") {
		t.Fatalf("answer to the carrier realm:\n%s", ans)
	}
	if cm, ok := a.Media("c1"); !ok || len(cm.Streams) != 1 {
		t.Fatalf("Media(c1) = %+v, %v", cm, ok)
	}

	if _, err := a.Offer(call("c2"), SideA, phoneSDP("192.0.2.10", 4002)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Offer(call("c3"), SideA, phoneSDP("192.0.2.10", 4004)); !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("third call with two port pairs per realm: %v, want ErrPortsExhausted", err)
	}
	a.End("c3")
	a.End("c1")
	if _, err := a.Offer(call("c4"), SideA, phoneSDP("192.0.2.10", 4006)); err != nil {
		t.Fatalf("ports not released at End: %v", err)
	}
	if _, err := a.Offer(call("c5"), SideA, []byte("v=0\r\nbogus")); !errors.Is(err, ErrBadSDP) {
		t.Fatalf("garbage SDP: %v, want ErrBadSDP", err)
	}
}

// A call whose streams carry nothing for the timeout is reported, once a
// second, to the timeout handler; a held one is not.
func TestAnchorMediaTimeout(t *testing.T) {
	a := newTestAnchor(t, time.Second)
	var fired atomic.Int32
	a.OnTimeout(func(id string) {
		if id == "quiet" {
			fired.Add(1)
		}
		if id == "held" {
			t.Errorf("a held call timed out")
		}
	})
	ref := CallRef{ID: "quiet", Realms: [2]string{"carrier", "pbx"}}
	if _, err := a.Offer(ref, SideA, phoneSDP("192.0.2.10", 4000)); err != nil {
		t.Fatal(err)
	}
	held := CallRef{ID: "held", Realms: [2]string{"carrier", "pbx"}}
	sdp := strings.Replace(string(phoneSDP("192.0.2.10", 4002)), "m=audio", "a=sendonly\r\nm=audio", 1)
	if _, err := a.Offer(held, SideA, []byte(sdp)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(4 * time.Second)
	for fired.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if fired.Load() == 0 {
		t.Fatal("silent call never reported")
	}
}

// An offer or answer for a call End ended (a re-INVITE's 200 that crossed
// the BYE) is refused and takes no port: the pools stay full.
func TestAnchorNothingAfterEnd(t *testing.T) {
	a := newTestAnchor(t, time.Minute)
	ref := CallRef{ID: "late", Realms: [2]string{"carrier", "pbx"}}
	if _, err := a.Offer(ref, SideA, phoneSDP("192.0.2.10", 4000)); err != nil {
		t.Fatal(err)
	}
	a.End("late")
	if _, err := a.Answer(ref, SideB, phoneSDP("198.51.100.10", 5000)); !errors.Is(err, errCallEnded) {
		t.Fatalf("answer after End: %v, want errCallEnded", err)
	}
	if _, err := a.Offer(ref, SideB, phoneSDP("198.51.100.10", 5000)); !errors.Is(err, errCallEnded) {
		t.Fatalf("offer after End: %v, want errCallEnded", err)
	}
	for name, f := range a.realms {
		if n := f.pool.InUse(); n != 0 {
			t.Errorf("realm %s: %d ports in use after End", name, n)
		}
	}
	if _, ok := a.Media("late"); ok {
		t.Error("the ended call is anchored again")
	}
}

// The set of ended calls is bounded in size and in time.
func TestEndedCallsBounded(t *testing.T) {
	var e endedCalls
	now := time.Now()
	for i := range maxEnded + 10 {
		e.add(strconv.Itoa(i), now)
	}
	if len(e.at) != maxEnded || len(e.order) != maxEnded {
		t.Fatalf("%d/%d entries, want %d", len(e.at), len(e.order), maxEnded)
	}
	if e.has("0", now) || !e.has(strconv.Itoa(maxEnded+9), now) {
		t.Fatal("not the oldest dropped first")
	}
	later := now.Add(endedTTL)
	if e.has("20", later) {
		t.Fatal("an entry outlived endedTTL")
	}
	e.add("new", later)
	if len(e.at) != 1 || len(e.order) != 1 {
		t.Fatalf("expired entries kept: %d", len(e.at))
	}
}
