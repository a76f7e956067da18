package mediarelay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many calls set up at once while the streams of earlier calls latch their
// first packets, with the media-timeout watch, the record snapshot (State)
// and the admin view (Media) running beside them. Before the lock order of
// anchor.go was fixed this hung: a worker latching a source waited for
// Anchor.mu in the latch hook, the watch held Anchor.mu waiting for a
// call's lock, and an offer held that call's lock waiting for the workers
// in NewStream. The test fails (with a goroutine dump) if the calls do not
// all finish in time.
func TestAnchorNoDeadlockLatchDuringSetup(t *testing.T) {
	const (
		calls       = 240
		concurrency = 48
		rounds      = 3
	)
	for round := range rounds {
		if !anchorStorm(t, round, calls, concurrency) {
			return
		}
	}
}

// anchorStorm runs one round; false when it hung (the test has failed and
// the stuck anchor is left behind: closing it would hang too).
func anchorStorm(t *testing.T, round, calls, concurrency int) bool {
	t.Helper()
	sbcAddr := netip.MustParseAddr("127.0.0.61")
	a, err := NewAnchor(AnchorConfig{
		Realms: []RealmMedia{
			{Name: "carrier", Addr: sbcAddr, MinPort: 36000, MaxPort: 36000 + 4*calls - 1},
			{Name: "pbx", Addr: sbcAddr, MinPort: 38000, MaxPort: 38000 + 4*calls - 1},
		},
		Timeout:    time.Hour,
		watchEvery: time.Millisecond, // the watch walks the calls all the time
	})
	if err != nil {
		t.Fatal(err)
	}
	var changes atomic.Int64
	a.OnChange(func(string) { changes.Add(1) })
	a.OnTimeout(func(string) {})

	stop := make(chan struct{})
	var side sync.WaitGroup
	// The record writer and the admin API read calls while they change.
	side.Add(1)
	go func() {
		defer side.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("r%d-c%d", round, i%calls)
			a.State(id)
			a.Media(id)
		}
	}()

	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrency)
	errs := make(chan error, calls)
	done := make(chan struct{})
	go func() {
		for i := range calls {
			wg.Add(1)
			sem <- struct{}{} // blocks for good when the anchor hangs
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := stormCall(a, fmt.Sprintf("r%d-c%d", round, i)); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		var dump bytes.Buffer
		_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
		t.Errorf("round %d: %d calls did not finish in 20 s: deadlock\n%s", round, calls, dump.String())
		return false
	}
	close(stop)
	side.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if changes.Load() == 0 {
		t.Errorf("round %d: no latch was reported: the storm did not exercise latching", round)
	}
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Errorf("round %d: Anchor.Close hung", round)
		return false
	}
	return !t.Failed()
}

// stormCall sets up one call, sends RTP both ways (latching both sides),
// reads it back on the far phone and ends the call.
func stormCall(a *Anchor, id string) error {
	ref := CallRef{ID: id, Realms: [2]string{"carrier", "pbx"}}
	var phones [2]*net.UDPConn
	for s := range phones {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		defer c.Close()
		phones[s] = c
	}
	port := func(s Side) int { return phones[s].LocalAddr().(*net.UDPAddr).Port }
	offer, err := a.Offer(ref, SideA, phoneSDP("127.0.0.1", port(SideA)))
	if err != nil {
		return fmt.Errorf("%s offer: %w", id, err)
	}
	answer, err := a.Answer(ref, SideB, phoneSDP("127.0.0.1", port(SideB)))
	if err != nil {
		return fmt.Errorf("%s answer: %w", id, err)
	}
	defer a.End(id)
	// The SBC's port facing each phone: A sends to what the answer gave
	// it, B to what the offer gave it.
	var sbc [2]*net.UDPAddr
	for s, body := range [2][]byte{answer, offer} {
		sess, err := ParseSDP(body)
		if err != nil || len(sess.Media) == 0 {
			return fmt.Errorf("%s: rewritten SDP unreadable: %v", id, err)
		}
		sbc[s] = &net.UDPAddr{IP: sess.Media[0].Addr.AsSlice(), Port: sess.Media[0].Port}
	}
	pkt := make([]byte, 172)
	pkt[0], pkt[1] = 0x80, 0
	for seq := range 5 {
		for s := range phones {
			binary.BigEndian.PutUint16(pkt[2:], uint16(seq))
			binary.BigEndian.PutUint32(pkt[4:], uint32(seq*160))
			binary.BigEndian.PutUint32(pkt[8:], uint32(0x1000+s))
			if _, err := phones[s].WriteToUDP(pkt, sbc[s]); err != nil {
				return fmt.Errorf("%s send: %w", id, err)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	// The callee hears the caller: the stream forwards after latching.
	buf := make([]byte, 1500)
	_ = phones[SideB].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := phones[SideB].ReadFromUDP(buf); err != nil {
		return fmt.Errorf("%s: callee got no RTP: %w", id, err)
	}
	return nil
}
