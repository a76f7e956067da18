package sbc

import (
	"net"
	"testing"
	"time"
)

// ready closes when sipgo's read loop first reads the listener (it has
// put it in its pool by then), and a listener that is never read, once
// released, does not hold senders forever.
func TestReadyConnClosesOnFirstRead(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ready := make(chan struct{})
	c := newReadyConn(pc, ready)
	select {
	case <-ready:
		t.Fatal("ready before any read")
	default:
	}
	_ = pc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, _, _ = c.ReadFrom(make([]byte, 16))
	select {
	case <-ready:
	default:
		t.Fatal("not ready after the first read")
	}
	c.setReady() // once only: a second close would panic
	_, _, _ = c.ReadFrom(make([]byte, 16))
}
