package sbc

import (
	"net"
	"sync"
	"time"
)

// The guard's part of TCP and TLS listeners: at accept, before any TLS
// work, a banned source's connection is closed, and a source over its
// connection bound (strangers guard.sources.max_connections, peers
// guard.peer_limits.max_connections) too; a connection must send its
// first bytes within guard.streams.first_read (TLS: its handshake has its
// own tls.handshake_timeout as well) and is closed when idle longer than
// guard.streams.idle. Each request on a stream then meets the per-source
// bucket and scanner check (streamScreen) and classification.

// guardListener wraps a realm's stream listener.
type guardListener struct {
	net.Listener
	g     *guard
	r     *Realm
	conns *sourceCalls // connections per source (the calls' counter type)
}

// guardListen wraps l (nil stays nil).
func (r *Realm) guardListen(g *guard, l net.Listener) net.Listener {
	if l == nil || g == nil {
		return l
	}
	return &guardListener{Listener: l, g: g, r: r, conns: newSourceCalls(g.cfg.Sources.MaxSources)}
}

func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := addrOf(c.RemoteAddr())
		now := l.g.now.Now()
		if l.g.bans.Banned(src, now) {
			l.g.reject(l.r.Name, "banned")
			_ = c.Close()
			continue // never an error: that would stop sipgo's accept loop
		}
		limit := l.g.cfg.Sources.MaxConnections
		if l.g.peer(l.r, src, now) {
			limit = l.g.cfg.PeerLimits.MaxConnections
		}
		release, ok := l.conns.acquire(src, limit)
		if !ok {
			l.g.reject(l.r.Name, "source_connections")
			_ = c.Close()
			continue
		}
		peer := func() bool { return l.g.peer(l.r, src, l.g.now.Now()) }
		return newGuardConn(c, release, peer, l.g.cfg.Streams.FirstRead.Std(), l.g.cfg.Streams.Idle.Std()), nil
	}
}

// guardConn bounds a stream connection's silence: first bytes within
// first, then, while its source is a stranger, at most idle between reads
// (0: unbounded). A peer's connection (a registered phone's, which
// carries its incoming calls) is never closed for silence.
type guardConn struct {
	net.Conn
	first, idle time.Duration
	peer        func() bool
	once        sync.Once
	release     func()
}

func newGuardConn(c net.Conn, release func(), peer func() bool, first, idle time.Duration) *guardConn {
	gc := &guardConn{Conn: c, first: first, idle: idle, release: release, peer: peer}
	if first > 0 {
		_ = c.SetReadDeadline(time.Now().Add(first))
	}
	return gc
}

func (c *guardConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && (c.idle > 0 || c.first > 0) {
		var d time.Time
		if c.idle > 0 && !c.peer() {
			d = time.Now().Add(c.idle)
		}
		_ = c.Conn.SetReadDeadline(d)
	}
	return n, err
}

// Close gives the source's connection place back, once.
func (c *guardConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
