// Package testcarrier is a carrier's SIP edge for tests, on sipgo: a
// registrar that challenges REGISTER with digest (MD5, SHA-256 or several,
// RFC 8760) and checks the answers, an OPTIONS responder, and a UAS that
// can challenge INVITE with 407 before answering it. It can be switched
// "down" (it then answers nothing) to test failure and recovery.
package testcarrier

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// Options configure a Carrier.
type Options struct {
	Realm    string // digest realm
	User     string
	Password string
	// Algorithms are offered in this order, one challenge header each
	// (e.g. SHA-256 then MD5); empty means MD5.
	Algorithms []string
	// Grant is the expiry the registrar grants (Contact expires).
	Grant int
	// ChallengeInvite answers INVITEs without valid Proxy-Authorization
	// with 407.
	ChallengeInvite bool
	// InviteCode, when not 0, answers every (authorized) INVITE with this
	// final status instead of 200.
	InviteCode int
	// NonceBoundToCallID ties each INVITE nonce to the Call-ID it was
	// issued on, as some carriers do: an answer on another Call-ID is
	// refused (403), whatever its digest.
	NonceBoundToCallID bool
	// Domain, when set, is the carrier's own domain: a digest uri of
	// sip:USER@Domain names a request for USER as well as its request-URI
	// does (a customer behind an outbound proxy addresses the domain).
	Domain string
}

// Register is one REGISTER the registrar accepted.
type Register struct {
	CallID    string
	CSeq      uint32
	Expires   int
	Algorithm string
	Contact   string
	At        time.Time
}

// Carrier is a running test carrier.
type Carrier struct {
	opt  Options
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	conn net.PacketConn
	down atomic.Bool

	mu        sync.Mutex
	nonces    map[string]string // nonce -> algorithm
	registers []Register
	rejected  int
	invites   []*sip.Request
	options   int
	verified  int
	nonceKey  [16]byte // NonceBoundToCallID's MAC key
}

// Start serves the carrier on conn (opened by the caller, in whatever
// network namespace it needs).
func Start(conn net.PacketConn, opt Options) (*Carrier, error) {
	if len(opt.Algorithms) == 0 {
		opt.Algorithms = []string{"MD5"}
	}
	if opt.Grant == 0 {
		opt.Grant = 3600
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("TestCarrier"), sipgo.WithUserAgentTransportLayerOptions(
		sip.WithTransportLayerLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))))
	if err != nil {
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return nil, err
	}
	c := &Carrier{opt: opt, ua: ua, srv: srv, conn: conn, nonces: map[string]string{}}
	_, _ = rand.Read(c.nonceKey[:])
	srv.OnRegister(c.onRegister)
	srv.OnOptions(c.onOptions)
	srv.OnInvite(c.onInvite)
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if !c.down.Load() {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		}
	})
	go func() { _ = srv.ServeUDP(conn) }()
	return c, nil
}

// Close stops the carrier.
func (c *Carrier) Close() {
	c.conn.Close()
	c.ua.Close()
}

// SetDown makes the carrier answer nothing (true) or everything (false).
func (c *Carrier) SetDown(d bool) { c.down.Store(d) }

// Registers returns the accepted REGISTERs so far.
func (c *Carrier) Registers() []Register {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Register(nil), c.registers...)
}

// Rejected is how many REGISTERs carried wrong credentials (403).
func (c *Carrier) Rejected() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rejected
}

// Invites returns every INVITE received, in order.
func (c *Carrier) Invites() []*sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sip.Request(nil), c.invites...)
}

// Options is how many OPTIONS were answered.
func (c *Carrier) Options() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.options
}

// Verified is how many digest answers (REGISTER or INVITE) checked out.
func (c *Carrier) Verified() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified
}

// boundNonce is a nonce that names its Call-ID: a random part and a MAC
// over it and the Call-ID.
func (c *Carrier) boundNonce(callID string) string {
	r := newNonce()
	return r + "." + c.nonceMAC(r, callID)
}

func (c *Carrier) nonceMAC(r, callID string) string {
	m := hmac.New(sha256.New, c.nonceKey[:])
	m.Write([]byte(r + "\x00" + callID))
	return hex.EncodeToString(m.Sum(nil)[:12])
}

// boundTo reports whether nonce was issued for callID.
func (c *Carrier) boundTo(nonce, callID string) bool {
	r, mac, ok := strings.Cut(nonce, ".")
	return ok && hmac.Equal([]byte(mac), []byte(c.nonceMAC(r, callID)))
}

func newNonce() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// challenge adds one challenge per algorithm, each with its own nonce.
func (c *Carrier) challenge(res *sip.Response, header string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, alg := range c.opt.Algorithms {
		n := newNonce()
		if c.opt.NonceBoundToCallID && header == "Proxy-Authenticate" {
			n = c.boundNonce(res.CallID().Value())
		}
		c.nonces[n] = alg
		res.AppendHeader(sip.NewHeader(header, fmt.Sprintf(`Digest realm="%s", nonce="%s", algorithm=%s, qop="auth"`, c.opt.Realm, n, alg)))
	}
}

// verify checks the credentials in header of req: a nonce this carrier
// issued (used once), the right user and URI, and the right response for
// the nonce's algorithm. It returns the algorithm, or "" when absent or
// wrong (wrong is true when credentials were present but bad).
func (c *Carrier) verify(req *sip.Request, header string) (alg string, wrong bool) {
	h := req.GetHeader(header)
	if h == nil {
		return "", false
	}
	cr, err := digest.ParseCredentials(h.Value())
	if err != nil {
		return "", true
	}
	c.mu.Lock()
	alg, ok := c.nonces[cr.Nonce]
	delete(c.nonces, cr.Nonce)
	c.mu.Unlock()
	if !ok {
		return "", false // stale or unknown nonce: challenge again
	}
	if c.opt.NonceBoundToCallID && header == "Proxy-Authorization" && !c.boundTo(cr.Nonce, req.CallID().Value()) {
		return "", true // issued on another Call-ID
	}
	if !strings.EqualFold(orMD5(cr.Algorithm), alg) || cr.Username != c.opt.User || cr.Realm != c.opt.Realm || !c.namesRequest(cr.URI, req) {
		return "", true
	}
	want, err := digest.Digest(&digest.Challenge{Realm: c.opt.Realm, Nonce: cr.Nonce, Algorithm: alg, QOP: []string{"auth"}},
		digest.Options{Method: string(req.Method), URI: cr.URI, Username: c.opt.User, Password: c.opt.Password, Cnonce: cr.Cnonce, Count: cr.Nc})
	if err != nil || want.Response != cr.Response {
		return "", true
	}
	c.mu.Lock()
	c.verified++
	c.mu.Unlock()
	return alg, false
}

// namesRequest reports whether a digest uri names req: its request-URI,
// or the same user at the carrier's Domain.
func (c *Carrier) namesRequest(uri string, req *sip.Request) bool {
	if uri == req.Recipient.String() {
		return true
	}
	return c.opt.Domain != "" && uri == "sip:"+req.Recipient.User+"@"+c.opt.Domain
}

func orMD5(a string) string {
	if a == "" {
		return "MD5"
	}
	return a
}

func (c *Carrier) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	if c.down.Load() {
		return
	}
	alg, wrong := c.verify(req, "Authorization")
	if wrong {
		c.mu.Lock()
		c.rejected++
		c.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		return
	}
	if alg == "" {
		res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
		c.challenge(res, "WWW-Authenticate")
		_ = tx.Respond(res)
		return
	}
	expires := c.opt.Grant
	if e := req.GetHeader("Expires"); e != nil && strings.TrimSpace(e.Value()) == "0" {
		expires = 0
	}
	contact := ""
	if ct := req.Contact(); ct != nil {
		contact = ct.Address.String()
	}
	c.mu.Lock()
	c.registers = append(c.registers, Register{CallID: req.CallID().Value(), CSeq: req.CSeq().SeqNo, Expires: expires, Algorithm: alg, Contact: contact, At: time.Now()})
	c.mu.Unlock()
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if contact != "" && expires > 0 {
		res.AppendHeader(sip.NewHeader("Contact", fmt.Sprintf("<%s>;expires=%d", contact, expires)))
	}
	_ = tx.Respond(res)
}

func (c *Carrier) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if c.down.Load() {
		return
	}
	c.mu.Lock()
	c.options++
	c.mu.Unlock()
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// SDP is the answer the carrier gives.
const SDP = "v=0\r\no=carrier 1 1 IN IP4 203.0.113.10\r\ns=-\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

func (c *Carrier) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if c.down.Load() {
		return
	}
	c.mu.Lock()
	c.invites = append(c.invites, req)
	c.mu.Unlock()
	if c.opt.ChallengeInvite {
		alg, wrong := c.verify(req, "Proxy-Authorization")
		if wrong {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
			return
		}
		if alg == "" {
			res := sip.NewResponseFromRequest(req, 407, "Proxy Authentication Required", nil)
			c.challenge(res, "Proxy-Authenticate")
			_ = tx.Respond(res)
			return
		}
	}
	if c.opt.InviteCode != 0 {
		_ = tx.Respond(sip.NewResponseFromRequest(req, c.opt.InviteCode, "Test Answer", nil))
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", []byte(SDP))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	host, port, _ := net.SplitHostPort(c.conn.LocalAddr().String())
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "carrier", Host: host, Port: atoi(port)}})
	_ = tx.Respond(res)
}

func atoi(s string) int {
	n := 0
	for _, ch := range s {
		n = n*10 + int(ch-'0')
	}
	return n
}
