package sbc

import (
	"net"
	"sync"
)

// sipgo sends a UDP request "from the listener" (Realm.fromListener) only
// once the listener is in its connection pool; before that it would bind a
// second socket on the same port and fail. ServeUDP puts the socket in the
// pool and then starts reading, and says nothing in between, so the
// socket itself tells: its first ReadFrom is sipgo's read loop starting,
// after the pool has it. Realm.request and Realm.write wait on ready.

// readyConn is a realm's UDP listener as sipgo sees it: ready is closed at
// its first read.
type readyConn struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}
}

func newReadyConn(c net.PacketConn, ready chan struct{}) *readyConn {
	return &readyConn{PacketConn: c, ready: ready}
}

func (c *readyConn) setReady() { c.once.Do(func() { close(c.ready) }) }

func (c *readyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.setReady()
	return c.PacketConn.ReadFrom(b)
}
