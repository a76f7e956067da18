package mediarelay

import (
	"reflect"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

// A re-offer the far leg refuses is rolled back: the offering side's
// address, the SRTP negotiation and keys, the directions and the ports are
// as before it, a line it added is gone with its ports, and media flows
// between the old addresses with the old keys as if it never happened.
func TestRollbackRestoresMedia(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })
	const suite = "AES_CM_128_HMAC_SHA1_80"
	a := srtpAnchor(t, SRTPPolicy{Mode: SRTPRequired}, SRTPPolicy{Mode: SRTPRequired})
	ref := CallRef{ID: "rb", Realms: [2]string{"carrier", "pbx"}}
	car, pbx := newSphone(t, suite), newSphone(t, suite)
	offer := must(t)(a.Offer(ref, SideA, cryptoSDP(car.port(), "RTP/SAVP", car.key.value())))
	pbx.learn(offer)
	answer := must(t)(a.Answer(ref, SideB, cryptoSDP(pbx.port(), "RTP/SAVP", pbx.key.value())))
	car.learn(answer)
	toA, toB := sbcPort(t, answer), sbcPort(t, offer)
	car.sendRaw(toA, car.packet(0xA, 1))
	pbx.expect(0xA, 1)

	before, _ := a.State("rb")
	c := a.calls["rb"]
	c.mu.Lock()
	secBefore := append([][2]legSec(nil), c.sec...)
	c.mu.Unlock()
	inUse := func() int { return a.realms["carrier"].pool.InUse() + a.realms["pbx"].pool.InUse() }
	used := inUse()

	// Another address, another key, and a second line.
	moved := newSphone(t, suite)
	re := string(cryptoSDP(moved.port(), "RTP/SAVP", moved.key.value())) +
		"m=audio " + strconv.Itoa(moved.port()+2) + " RTP/SAVP 0\r\na=crypto:" + moved.key.value() + "\r\n"
	if _, err := a.Offer(ref, SideA, []byte(re)); err != nil {
		t.Fatal(err)
	}
	if inUse() == used {
		t.Fatal("the added line took no ports: the test proves nothing")
	}
	a.Rollback("rb")

	after, _ := a.State("rb")
	for i := range after.Legs {
		after.Legs[i].Version = before.Legs[i].Version // moves on, by RFC 3264 8
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("media after rollback:\n%+v\nwant\n%+v", after, before)
	}
	c.mu.Lock()
	if !reflect.DeepEqual(secBefore, c.sec) {
		t.Errorf("SRTP negotiation after rollback %+v, want %+v", c.sec, secBefore)
	}
	c.mu.Unlock()
	if n := inUse(); n != used {
		t.Errorf("%d ports in use after rollback, %d before", n, used)
	}
	for seq := uint16(2); seq <= 5; seq++ {
		car.sendRaw(toA, car.packet(0xA, seq))
		pbx.expect(0xA, seq)
		pbx.sendRaw(toB, pbx.packet(0xB, seq))
		car.expect(0xB, seq)
	}
	moved.nothing()

	a.Rollback("rb") // nothing open: a no-op
	if again, _ := a.State("rb"); len(again.Streams) != 1 || !reflect.DeepEqual(again.Legs[0].Ports, before.Legs[0].Ports) {
		t.Error("a second rollback changed the media")
	}
	// The next offer and its answer work from the restored state.
	if _, err := a.Offer(ref, SideA, cryptoSDP(car.port(), "RTP/SAVP", car.key.value())); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Answer(ref, SideB, cryptoSDP(pbx.port(), "RTP/SAVP", pbx.key.value())); err != nil {
		t.Fatal(err)
	}
	a.Rollback("rb") // answered: nothing to undo
	if n := inUse(); n != used {
		t.Errorf("%d ports in use after the next offer/answer, %d before", n, used)
	}
	a.End("rb")
}
