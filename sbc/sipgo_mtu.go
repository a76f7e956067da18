package sbc

import (
	"context"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
)

// Large messages (RFC 3261 18.1.1). sipgo v1.7.2 refuses to write a UDP
// message longer than sip.UDPMTUSize-200 bytes (1500-200: 1300) in
// UDPConnection.WriteMsg (sip/transport_udp.go), returning
// sip.ErrUDPMTUCongestion, "size of packet larger than MTU": the request
// is never sent (its transaction fails at once) and a response is lost.
// It never switches transport itself, and the limit is a package variable
// with no per-UA option. So the limit is lifted here for the whole
// process, before any user agent exists, and the SBC applies 18.1.1 per
// realm itself:
//   - a request over the realm's mtu that would go over UDP goes over TCP
//     when the realm lists tcp (so the SBC takes TCP too) and the peer
//     accepts a connection, its top Via saying TCP;
//   - else (no tcp on the realm, or the connection refused or not made in
//     tcpSwitchDial) it goes over UDP as it is, one datagram the kernel
//     sends as IP fragments, as 18.1.1 allows when TCP fails;
//   - a response goes back the way its request came (18.2.2): over UDP,
//     fragmented when large. Never dropped for its size.

// maxUDPPayload is the largest UDP payload (over IPv4); past it the kernel
// refuses the write (EMSGSIZE), which fails the send as any socket error.
const maxUDPPayload = 65507

func init() { sip.UDPMTUSize = maxUDPPayload + 200 } // sipgo subtracts 200

// tcpSwitchDial bounds the TCP connect of a request switched for its
// size: a peer that drops SYNs gets the request over UDP after this, not
// after the kernel's minutes of SYN retries.
const tcpSwitchDial = time.Second

// mtu is the realm's limit for a request over UDP.
func (r *Realm) mtu() int {
	if r.cfg.MTU == 0 { // a Config built in code, not parsed
		return config.DefaultMTU
	}
	return r.cfg.MTU
}

// overMTU reports whether req, about to go over UDP, should go over TCP
// for its size: larger than the realm's mtu, and the realm speaks TCP.
func (r *Realm) overMTU(req *sip.Request) bool {
	return r.tcp != nil && strings.EqualFold(req.Transport(), "UDP") && len(req.String()) > r.mtu()
}

// requestOverTCP sends req over TCP (RFC 3261 18.1.1), its top Via
// rewritten to say so. When no connection is made, req is put back as it
// was, for UDP, and ok is false: the caller sends it over UDP. req is
// changed in place, so what the caller keeps of it (a CANCEL's Via, a
// retry's copy) matches what was sent.
func (r *Realm) requestOverTCP(ctx context.Context, req *sip.Request) (tx sip.ClientTransaction, ok bool) {
	via := req.Via()
	if via == nil {
		return nil, false
	}
	oldTransport, oldLaddr := via.Transport, req.Laddr
	via.Transport = "TCP"
	req.SetTransport("TCP")
	req.Laddr = sip.Addr{} // a UDP listener's address is no TCP source
	dctx, cancel := context.WithTimeout(ctx, tcpSwitchDial)
	defer cancel()
	tx, err := r.cli.TransactionRequest(dctx, req, r.fromListener)
	if err == nil {
		r.log.Debug("large request sent over TCP", "method", req.Method.String(), "size", len(req.String()), "mtu", r.mtu())
		return tx, true
	}
	via.Transport = oldTransport
	req.SetTransport("UDP")
	req.Laddr = oldLaddr
	r.log.Debug("large request: no TCP connection, sent over UDP", "method", req.Method.String(), "error", err)
	return nil, false
}

// followTransport keeps leg l on the transport its INVITE went out on:
// after a switch to TCP for size, the dialog's ACK, BYE and re-INVITEs
// go over TCP too (a TCP-only peer would never see them over UDP), and
// the SBC's Contact on that leg says so from then on.
func (s *SBC) followTransport(c *Call, l *Leg, inv *sip.Request) {
	t := strings.ToUpper(inv.Transport())
	c.mu.Lock()
	l.local.Transport = t
	c.mu.Unlock()
}
