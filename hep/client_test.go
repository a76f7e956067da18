package hep

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testPacket(payload string) Packet {
	return Packet{
		Src: netip.MustParseAddrPort("127.0.0.1:5060"), Dst: netip.MustParseAddrPort("127.0.0.1:5080"),
		Transport: UDP, Time: time.Now(), Type: TypeSIP, CorrelationID: "c1", Payload: []byte(payload),
	}
}

// blockingConn is a collector that never reads: every Write blocks until
// release is closed.
type blockingConn struct {
	net.Conn
	release chan struct{}
	writes  chan []byte
}

func (c *blockingConn) Write(b []byte) (int, error) {
	<-c.release
	c.writes <- append([]byte(nil), b...)
	return len(b), nil
}
func (c *blockingConn) Close() error                     { return nil }
func (c *blockingConn) SetWriteDeadline(time.Time) error { return nil }

// A collector that stalls never stalls Send: past the queue's size
// packets are dropped and counted, and each Send returns at once.
func TestQueueDropsNeverBlocks(t *testing.T) {
	bc := &blockingConn{release: make(chan struct{}), writes: make(chan []byte, 100)}
	c, err := New(Config{Address: "127.0.0.1:9", QueueSize: 4, CaptureID: 7}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c.dial = func(string, string) (net.Conn, error) { return bc, nil }
	const n = 50
	start := time.Now()
	accepted := 0
	for i := range n {
		if c.Send(testPacket("msg" + string(rune('a'+i%26)))) {
			accepted++
		}
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("%d Sends to a stalled collector took %v", n, d)
	}
	// The writer holds one packet in its blocked Write, the queue 4 more.
	if accepted < 4 || accepted > 5 {
		t.Errorf("%d packets accepted into a queue of 4 (plus one being written)", accepted)
	}
	st := c.Stats()
	if st.Dropped != uint64(n-accepted) || st.Queued != uint64(accepted) {
		t.Errorf("stats %+v, want %d queued and %d dropped", st, accepted, n-accepted)
	}
	close(bc.release)
	c.Close(time.Second)
	if got := len(bc.writes); got != accepted {
		t.Errorf("collector got %d packets, %d were queued", got, accepted)
	}
	if st := c.Stats(); st.Sent != uint64(accepted) {
		t.Errorf("sent %d, want %d", st.Sent, accepted)
	}
	if c.Send(testPacket("late")) || c.Stats().Dropped != uint64(n-accepted+1) {
		t.Error("a Send after Close was not refused and counted")
	}
}

// Close with a collector that never takes a packet returns after the
// flush bound, counting what was left.
func TestCloseBounded(t *testing.T) {
	bc := &blockingConn{release: make(chan struct{}), writes: make(chan []byte, 100)}
	c, err := New(Config{Address: "127.0.0.1:9", QueueSize: 8}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c.dial = func(string, string) (net.Conn, error) { return bc, nil }
	for range 8 {
		c.Send(testPacket("x"))
	}
	time.Sleep(20 * time.Millisecond) // the writer takes one and blocks
	done := make(chan struct{})
	go func() { c.Close(100 * time.Millisecond); close(done) }()
	select {
	case <-done:
		t.Fatal("Close returned while the writer was still inside Write")
	case <-time.After(200 * time.Millisecond):
	}
	close(bc.release) // the stuck Write returns; Close must end now
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Close did not return after the flush bound")
	}
	st := c.Stats()
	if st.Sent+st.Dropped != 8 {
		t.Errorf("stats %+v: sent and dropped do not add up to the 8 queued", st)
	}
}

// UDP: each packet is one datagram, as encoded.
func TestUDPClient(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := New(Config{Address: pc.LocalAddr().String(), CaptureID: 42, Password: "secret"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(time.Second)
	p := testPacket("INVITE sip:x SIP/2.0\r\n\r\n")
	if !c.Send(p) {
		t.Fatal("Send refused")
	}
	buf := make([]byte, 65535)
	_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	p.CaptureID, p.AuthKey = 42, "secret"
	want, _ := p.Append(nil)
	if string(buf[:n]) != string(want) {
		t.Fatalf("datagram %x\nwant %x", buf[:n], want)
	}
}

// TCP: packets go back to back on the stream; when the collector drops
// the connection the client reconnects and goes on.
func TestTCPReconnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 100)
	var wg sync.WaitGroup
	accept := func(maxPackets int) {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			r := bufio.NewReader(conn)
			for range maxPackets {
				head := make([]byte, 6)
				if _, err := io.ReadFull(r, head); err != nil {
					return
				}
				if string(head[:4]) != "HEP3" {
					t.Errorf("stream out of frame: %q", head)
					return
				}
				rest := make([]byte, int(binary.BigEndian.Uint16(head[4:]))-6)
				if _, err := io.ReadFull(r, rest); err != nil {
					return
				}
				got <- string(rest[len(rest)-1:]) // the payload's last byte
			}
		}()
	}
	c, err := New(Config{Address: ln.Addr().String(), Transport: "tcp"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c.backoffMax = 50 * time.Millisecond
	defer c.Close(time.Second)

	c.Send(testPacket("1"))
	c.Send(testPacket("2"))
	accept(2) // then the collector hangs up
	for _, w := range []string{"1", "2"} {
		select {
		case g := <-got:
			if g != w {
				t.Fatalf("got packet %q, want %q", g, w)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("packet %q never arrived", w)
		}
	}
	wg.Wait()
	go accept(100)
	// The first writes after the hang-up may still succeed into the dead
	// socket's buffer, or fail and reconnect; keep sending until the new
	// connection carries one.
	deadline := time.Now().Add(3 * time.Second)
	for {
		c.Send(testPacket("3"))
		select {
		case g := <-got:
			if g != "3" {
				t.Fatalf("got %q after reconnect", g)
			}
			t.Logf("stats after the reconnect: %+v", c.Stats())
			c.Close(time.Second) // the collector's reader ends with the connection
			wg.Wait()
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no packet after the collector came back: %+v", c.Stats())
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []Config{
		{Address: "127.0.0.1:9060", Transport: "sctp"},
		{Address: "no-port"},
	} {
		if c, err := New(cfg, quiet); err == nil {
			c.Close(0)
			t.Errorf("%+v accepted", cfg)
		} else if errors.Is(err, ErrTooLarge) {
			t.Errorf("%+v: wrong error %v", cfg, err)
		}
	}
}
