package sbc_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/internal/testphone"
)

// TestReloadHEPCollector: a reload that names another collector sends
// every message from then on there and none to the old one; one that
// removes the hep section stops the mirroring; sbc_hep_sent_total counts
// across the swaps and never goes back. An SBC started without HEP
// refuses a reload that turns it on, naming hep.address.
func TestReloadHEPCollector(t *testing.T) {
	colA, colB := newCollector(t), newCollector(t)
	phone := testphone.NewLoopback(t)
	cp, ep := freePort(t), freePort(t)
	y := fmt.Sprintf(`
realms:
  - {name: carrier, listen: "127.0.0.1:%d"}
  - {name: enterprise, listen: "127.0.0.1:%d"}
media: {enabled: false}
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["127.0.0.1:9"]}
`, cp, ep)
	s := runSBC(t, y+fmt.Sprintf("hep: {address: %q}\n", colA.conn.LocalAddr()), cp, ep)
	options := func(id string) {
		t.Helper()
		phone.Send(s.carrier, fmt.Sprintf("OPTIONS sip:%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s\nFrom: <sip:a@x>;tag=1\nTo: <sip:%s>\nCall-ID: %s\nCSeq: 1 OPTIONS\nMax-Forwards: 70", s.carrier, phone.Addr, id, s.carrier, id), "")
		phone.ExpectResponse(200, sip.OPTIONS, wait)
	}
	mirrored := func(col *collector, id string) int {
		n := 0
		for _, p := range col.packets() {
			if strings.Contains(string(p), "Call-ID: "+id) {
				n++
			}
		}
		return n
	}
	waitMirrored := func(col *collector, id string) {
		t.Helper()
		for deadline := time.Now().Add(wait); mirrored(col, id) < 2; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("OPTIONS %s and its 200 not at the collector: %d packets", id, mirrored(col, id))
			}
		}
	}
	with := func(hep string) *config.Config {
		c, err := config.Parse([]byte(y + hep))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	options("to-a")
	waitMirrored(colA, "to-a")
	sentA := s.HEPStats().Sent
	if err := s.Reload(with(fmt.Sprintf("hep: {address: %q}\n", colB.conn.LocalAddr()))); err != nil {
		t.Fatal(err)
	}
	options("to-b")
	waitMirrored(colB, "to-b")
	if n := mirrored(colA, "to-b"); n != 0 {
		t.Errorf("the old collector got %d packets after the reload", n)
	}
	if sent := s.HEPStats().Sent; sent < sentA+2 {
		t.Errorf("sbc_hep_sent_total %d after the swap, was %d before: it must count on", sent, sentA)
	}
	if err := s.Reload(with("")); err != nil {
		t.Fatal(err)
	}
	// A message is queued for the collector on the read and write paths
	// themselves, before the phone has the 200: Queued is exact here.
	before := s.HEPStats().Queued
	options("to-none")
	if q := s.HEPStats().Queued; q != before {
		t.Errorf("HEP off by reload, yet %d packets queued for a collector", q-before)
	}

	cp2, ep2 := freePort(t), freePort(t)
	y2 := strings.NewReplacer(fmt.Sprint(cp), fmt.Sprint(cp2), fmt.Sprint(ep), fmt.Sprint(ep2)).Replace(y)
	off := runSBC(t, y2, cp2, ep2)
	on, err := config.Parse([]byte(y2 + fmt.Sprintf("hep: {address: %q}\n", colA.conn.LocalAddr())))
	if err != nil {
		t.Fatal(err)
	}
	if err := off.Reload(on); err == nil || !strings.Contains(err.Error(), "hep.address") {
		t.Fatalf("turning HEP on by reload: %v, want a refusal naming hep.address", err)
	}
}
