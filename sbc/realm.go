package sbc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"golang.org/x/sys/unix"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/sbc/sipguard"
	"github.com/edgesbc/edgesbc/topology"
)

// Realm is one network the SBC faces: its own sipgo user agent, server and
// client, bound to the realm's address, so every message toward that
// network leaves from the realm's listener and nothing crosses by accident.
type Realm struct {
	Name string
	cfg  config.Realm
	// sbcPolicy is the SBC's current policy snapshot, whose filters[Name]
	// is this realm's header policy for new calls (reload.go).
	sbcPolicy func() *policySnap
	log       *slog.Logger
	// trusted: the realm is in the trust domain (RFC 3325; identity.go),
	// fixed at start (a reload that would change it is refused).
	trusted bool

	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cli *sipgo.Client

	udp   *net.UDPConn
	tcp   net.Listener
	laddr sip.Addr      // the UDP listener, which leg requests are sent from
	ready chan struct{} // sipgo_ready.go

	tls   *realmTLS // nil without a tls block (tls.go)
	guard *guard    // its stream listeners' part (guard_stream.go)
	hep   *hepTap   // nil without HEP tracing (hep.go)
}

func newRealm(s *SBC, rc config.Realm) (*Realm, error) {
	r := &Realm{
		Name:    rc.Name,
		cfg:     rc,
		log:     s.log.With("realm", rc.Name),
		ready:   make(chan struct{}),
		hep:     s.hep,
		trusted: s.cfg.Trusted(rc.Name),
		guard:   s.guard,
	}
	r.sbcPolicy = s.policy
	ap := rc.ListenAddrPort()
	r.laddr = sip.Addr{IP: net.IP(ap.Addr().AsSlice()), Port: int(ap.Port())}
	if err := r.setupTLS(s); err != nil {
		return nil, err
	}
	lib := slog.New(&libLogHandler{next: s.log.Handler(), malformed: func() {
		s.metrics.Malformed.WithLabelValues(rc.Name, "parser").Inc()
	}}).With("realm", rc.Name)
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(rc.UserAgent),
		sipgo.WithUserAgentHostname(uriHost(rc.AdvertiseAddr())),
		sipgo.WithUserAgenTLSConfig(r.clientTLSConfig()),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(lib),
			sip.WithTransportLayerReadFilter(r.readFilter(s)),
		),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(lib),
			sip.WithTransactionLayerUnhandledResponseHandler(func(res *sip.Response) { s.onStrayResponse(r, res) }),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("realm %s: user agent: %w", rc.Name, err)
	}
	r.ua = ua
	if r.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(lib)); err != nil {
		return nil, fmt.Errorf("realm %s: server: %w", rc.Name, err)
	}
	if r.cli, err = sipgo.NewClient(ua, sipgo.WithClientLogger(lib), sipgo.WithClientHostname(uriHost(rc.AdvertiseAddr()))); err != nil {
		return nil, fmt.Errorf("realm %s: client: %w", rc.Name, err)
	}
	return r, nil
}

// listen opens the realm's sockets. They are the SBC's own (not sipgo's
// ListenAndServe) so the receive buffer can be sized and shutdown is ours.
func (r *Realm) listen(readBuffer int, freeBind bool) error {
	if r.cfg.HasTransport("udp") {
		c, err := r.listenUDP(freeBind)
		if err != nil {
			return fmt.Errorf("realm %s: listen udp %s: %w", r.Name, r.cfg.Listen, err)
		}
		sizeReadBuffer(c, readBuffer, r.log)
		r.udp = c
	}
	if r.cfg.HasTransport("tcp") {
		l, err := r.listenTCP(freeBind)
		if err != nil {
			r.close()
			return fmt.Errorf("realm %s: listen tcp %s: %w", r.Name, r.cfg.Listen, err)
		}
		r.tcp = l
	}
	if err := r.listenTLS(); err != nil {
		r.close()
		return err
	}
	return nil
}

func (r *Realm) serve() {
	if r.udp != nil {
		conn := newReadyConn(r.hepWrap(r.udp), r.ready)
		go func() {
			defer conn.setReady() // even when sipgo stops at once: never block senders
			if err := r.srv.ServeUDP(conn); err != nil && !errors.Is(err, net.ErrClosed) {
				r.log.Error("UDP listener stopped", "error", err)
			}
		}()
	} else {
		close(r.ready)
	}
	if r.tcp != nil {
		go func() {
			if err := r.srv.ServeTCP(r.hepListen(r.guardListen(r.guard, r.tcp))); !errors.Is(err, net.ErrClosed) { // never nil
				r.log.Error("TCP listener stopped", "error", err)
			}
		}()
	}
	r.serveTLS()
}

func (r *Realm) close() {
	if r.udp != nil {
		r.udp.Close()
	}
	if r.tcp != nil {
		r.tcp.Close()
	}
	r.closeTLS()
	if r.ua != nil {
		r.ua.Close()
	}
}

// local is the SBC's face in this realm for a transport ("UDP", "TCP", "TLS").
func (r *Realm) local(transport string) topology.Local {
	port := r.laddr.Port
	if strings.EqualFold(transport, "TLS") {
		port = r.tlsPort()
	}
	return topology.Local{
		Host:      r.cfg.AdvertiseAddr(),
		Port:      port,
		Transport: strings.ToUpper(transport),
		UserAgent: r.cfg.UserAgent,
		Allow:     allowed, // capabilities.go
	}
}

// fromListener makes a UDP request leave from the realm's listening socket,
// so peers see one address per realm and answers come back to it. The
// request is already complete; sipgo adds nothing.
func (r *Realm) fromListener(_ *sipgo.Client, req *sip.Request) error {
	if strings.EqualFold(req.Transport(), "UDP") {
		r.laddr.Copy(&req.Laddr)
	}
	return nil
}

func (r *Realm) request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	<-r.ready
	if r.overMTU(req) { // sipgo_mtu.go: RFC 3261 18.1.1
		if tx, ok := r.requestOverTCP(ctx, req); ok {
			return tx, nil
		}
	}
	ctx, cancel := r.connectContext(ctx, req)
	defer cancel()
	return r.cli.TransactionRequest(ctx, req, r.fromListener)
}

func (r *Realm) write(req *sip.Request) error {
	<-r.ready
	return r.cli.WriteRequest(req, r.fromListener)
}

// readFilter runs on every UDP datagram before sipgo parses it: hostile
// input is answered with a stateless 400/505 or dropped, and counted. TCP
// arrives as a stream, not messages, and is left to sipgo's stream parser.
func (r *Realm) readFilter(s *SBC) sip.TransportReadFilter {
	lim := sipguard.Limits{MaxMessage: s.cfg.SIP.MaxMessage}
	return func(p sip.TransportReadProps, data []byte) ([]byte, error) {
		if s.standby.Load() { // HA standby: fenced, serves nothing
			return nil, nil
		}
		if s.guard.screen(r, p, data) {
			return nil, nil // banned, over its rate, or a scanner: counted
		}
		if p.Transport != "UDP" {
			return data, nil
		}
		v := sipguard.Check(data, lim)
		switch v.Action {
		case sipguard.Accept:
			r.hepRead(p.RemoteAddr, data)
			if s.shedRaw(r, p, data) { // overload.go: 503 before parsing
				return nil, nil
			}
			return s.guard.markLength(p, data), nil
		case sipguard.Reject:
			s.metrics.Malformed.WithLabelValues(r.Name, v.Why).Inc()
			s.guard.malformed(r, p)
			// Never a larger answer than the request to a source that has
			// not proved its address (no amplification).
			if res := sipguard.StatelessResponse(data, v.Status, v.Reason); res != nil && r.udp != nil &&
				s.guard.mayAnswer(addrOf(p.RemoteAddr), len(data), len(res), 1) {
				if _, err := r.udp.WriteTo(res, p.RemoteAddr); err == nil {
					s.metrics.resOut(r.Name, v.Status)
				}
			}
		default:
			s.metrics.Malformed.WithLabelValues(r.Name, v.Why).Inc()
			s.guard.malformed(r, p)
		}
		r.log.Debug("malformed SIP message", "from", p.RemoteAddr.String(), "cause", v.Why, "status", v.Status)
		return nil, nil // never an error: that would stop sipgo's read loop
	}
}

// libLogHandler quiets sipgo: its records go out at most at warn level
// (sipgo logs every unparsable datagram in full at error level, which a
// flood would turn into a disk-filling attack), and parse failures are
// counted instead.
type libLogHandler struct {
	next      slog.Handler
	malformed func()
}

func (h *libLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *libLogHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Message == "failed to parse" {
		h.malformed()
		return nil
	}
	if rec.Level > slog.LevelWarn {
		rec.Level = slog.LevelWarn
	}
	if !h.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return h.next.Handle(ctx, rec)
}

func (h *libLogHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &libLogHandler{next: h.next.WithAttrs(a), malformed: h.malformed}
}

func (h *libLogHandler) WithGroup(n string) slog.Handler {
	return &libLogHandler{next: h.next.WithGroup(n), malformed: h.malformed}
}

// sizeReadBuffer sets SO_RCVBUF. The kernel caps it at net.core.rmem_max
// (208 KB by default); as root, SO_RCVBUFFORCE goes past the cap, which is
// what a signaling socket at thousands of calls per second needs to ride
// out a scheduling stall without dropping (and then drowning in
// retransmissions).
func sizeReadBuffer(c *net.UDPConn, want int, log *slog.Logger) {
	_ = c.SetReadBuffer(want)
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	var got int
	_ = raw.Control(func(fd uintptr) {
		got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		if got < want { // the kernel reports double what was set
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, want)
			got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		}
	})
	if got < want {
		log.Warn("UDP receive buffer smaller than configured (raise net.core.rmem_max or run as root)", "want", want, "got", got)
	}
}
