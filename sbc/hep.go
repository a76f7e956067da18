package sbc

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgesbc/edgesbc/hep"
	"github.com/edgesbc/edgesbc/mediarelay"
)

// HEP tracing (config hep:): every SIP datagram a realm's UDP listener
// accepts or sends is mirrored to a Homer collector, and each call's
// media stats when it ends. The taps are the two places every UDP
// datagram passes: the read filter (after the guard's checks, so floods
// and garbage it drops are not mirrored) and the listener socket's
// WriteTo (hepConn), which sipgo uses for requests, responses and
// retransmissions alike.
//
// The correlation ID ties a call's two legs: it is leg A's Call-ID on
// both. A message of leg B is known by its Call-ID in the call table
// (callTable.lookup), looked up when the message passes, while the call
// is still there; a Call-ID the table does not know (leg A's first
// INVITE, out-of-dialog requests) is its own correlation ID.
//
// TCP and TLS: hep_stream.go. Not mirrored: connections sipgo dials
// itself, the guard's stateless answers to unverified sources (written on
// the raw socket), and RTCP reports one by one (the relay keeps
// per-stream stats, sent once at the call's end).

// hepTap mirrors SIP to one HEP client. It exists when tracing was on at
// start (the sockets are wrapped then); a reload may swap the client or
// turn it off (hep_reload.go), never wrap sockets later.
type hepTap struct {
	c          atomic.Pointer[hep.Client] // nil: turned off by a reload
	calls      *callTable
	maxMessage int // sip.max_message: the stream framer's bound

	mu       sync.Mutex    // guards the two below
	retired  []*hep.Client // swapped out, still flushing
	base     hep.Stats     // the closed clients' counts
	retiring sync.WaitGroup
}

// setupHEP starts the HEP client when the config has one.
func (s *SBC) setupHEP() error {
	h := s.cfg.HEP
	if !h.Enabled() {
		return nil
	}
	c, err := hep.New(hep.Config{
		Address: h.Address, Transport: h.Transport, CaptureID: uint32(h.CaptureID),
		Password: h.Password, QueueSize: h.QueueSize,
	}, s.log)
	if err != nil {
		return err
	}
	s.hep = &hepTap{calls: s.calls, maxMessage: s.cfg.SIP.MaxMessage}
	s.hep.c.Store(c)
	tap := s.hep
	stat := func(name, help string, v func(hep.Stats) uint64) {
		// Register, not MustRegister: a registry reused by a second SBC
		// keeps the first one's counters rather than panicking.
		if err := s.metrics.Registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(tap.stats())) })); err != nil {
			s.log.Warn("HEP metric not registered", "metric", name, "error", err)
		}
	}
	stat("sbc_hep_sent_total", "HEP packets written to the collector.", func(st hep.Stats) uint64 { return st.Sent })
	stat("sbc_hep_dropped_total", "HEP packets dropped: queue full, too large, or at shutdown.", func(st hep.Stats) uint64 { return st.Dropped })
	stat("sbc_hep_errors_total", "HEP packets lost to a failed write to the collector.", func(st hep.Stats) uint64 { return st.Errors })
	s.log.Info("HEP tracing on", "collector", h.Address, "transport", h.Transport, "capture_id", h.CaptureID)
	return nil
}

// closeHEP writes out what is queued, for a bounded time.
func (s *SBC) closeHEP() {
	if s.hep != nil {
		s.hep.retire(s.hep.c.Swap(nil), false)
		s.hep.retiring.Wait() // the clients a reload swapped out
	}
}

// HEPStats are the HEP client's counters; zero when tracing is off.
func (s *SBC) HEPStats() hep.Stats {
	if s.hep == nil {
		return hep.Stats{}
	}
	return s.hep.stats()
}

// sip mirrors one SIP datagram. It runs on sipgo's read and write paths:
// it copies what it needs and queues, never waits.
func (t *hepTap) sip(tr hep.Transport, src, dst netip.AddrPort, data []byte) {
	if t == nil || len(bytes.TrimSpace(data)) == 0 { // keepalives are not messages
		return
	}
	c := t.c.Load()
	if c == nil {
		return
	}
	corr := ""
	if id := callIDOf(data); id != "" {
		corr = t.correlate(id)
	}
	c.Send(hep.Packet{
		Src: src, Dst: dst, Transport: tr, Time: time.Now(),
		Type: hep.TypeSIP, CorrelationID: corr, Payload: data,
	})
}

// correlate maps a Call-ID to its call's leg A Call-ID.
func (t *hepTap) correlate(callID string) string {
	ref, ok := t.calls.lookup(callID)
	if !ok || ref.side == SideA {
		return callID
	}
	ref.call.mu.Lock()
	a := ref.call.a
	ref.call.mu.Unlock()
	if a == nil {
		return callID
	}
	return a.d.CallID
}

// hepMedia sends a call's media stats, as the admin API shows them, when
// it ends; it must run before the media hook releases the call.
func (s *SBC) hepMedia(c *Call, legA string) {
	if s.hep == nil || s.hep.c.Load() == nil {
		return
	}
	mi, ok := s.media.(mediaInfo)
	if !ok {
		return
	}
	m, ok := mi.Media(c.ID)
	if !ok {
		return
	}
	body, err := json.Marshal(struct {
		Event  string               `json:"event"`
		Call   string               `json:"call"`
		CallID string               `json:"call_id"`
		Media  mediarelay.CallMedia `json:"media"`
	}{"call_media", c.ID, legA, m})
	if err != nil {
		return
	}
	c.mu.Lock()
	a, b := c.a, c.b
	c.mu.Unlock()
	src := a.realm.cfg.ListenAddrPort()
	dst := src
	if b != nil {
		dst = b.realm.cfg.ListenAddrPort()
	}
	if hc := s.hep.c.Load(); hc != nil {
		hc.Send(hep.Packet{
			Src: src, Dst: dst, Transport: hep.UDP, Time: time.Now(),
			Type: hep.TypeLog, CorrelationID: legA, Payload: body,
		})
	}
}

// callIDOf finds the Call-ID header (or its compact form i) in a raw SIP
// message, "" when there is none. It reads only the header section.
func callIDOf(data []byte) string {
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		data = data[:i]
	}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, []byte("Call-ID")) || bytes.EqualFold(name, []byte("i")) {
			return string(bytes.TrimSpace(value))
		}
	}
	return ""
}

// hepConn is a realm's UDP listener whose every write is mirrored.
type hepConn struct {
	net.PacketConn
	tap   *hepTap
	local netip.AddrPort
}

// hepWrap wraps the listener when tracing is on.
func (r *Realm) hepWrap(c net.PacketConn) net.PacketConn {
	if r.hep == nil {
		return c
	}
	return &hepConn{PacketConn: c, tap: r.hep, local: r.cfg.ListenAddrPort()}
}

func (c *hepConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(b, addr)
	if err == nil {
		if ua, ok := addr.(*net.UDPAddr); ok {
			c.tap.sip(hep.UDP, c.local, ua.AddrPort(), b[:n])
		}
	}
	return n, err
}

// hepRead mirrors a datagram the read filter accepted.
func (r *Realm) hepRead(remote net.Addr, data []byte) {
	if r.hep == nil {
		return
	}
	if ua, ok := remote.(*net.UDPAddr); ok {
		r.hep.sip(hep.UDP, ua.AddrPort(), r.cfg.ListenAddrPort(), data)
	}
}
