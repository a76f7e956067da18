package sbc

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
	"github.com/edgesbc/edgesbc/topology"
)

// registrar is the SBC acting as registrar for a realm (RFC 3261 10.3):
// the enterprise PBX registers its contact here, and calls routed into
// the realm go to that contact.
type registrar struct {
	cfg config.RegistrarConfig
	loc *policy.Locations
}

func newRegistrar(c config.RegistrarConfig) *registrar {
	return &registrar{cfg: c, loc: policy.NewLocations(c.MaxBindings)}
}

// registerHandlers makes REGISTER reach the registrar in realms that
// have one (the others keep answering 405).
func (g *guard) registerHandlers(r *Realm, wrap func(func(*Realm, *sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction)) {
	if g.realms[r.Name].registrar != nil {
		r.srv.OnRequest(sip.REGISTER, wrap(g.onRegister))
	}
}

func (g *guard) onRegister(r *Realm, req *sip.Request, tx sip.ServerTransaction) {
	reg := g.realms[r.Name].registrar
	to := req.To()
	if to == nil || to.Address.User == "" {
		g.reply(r, req, tx, sip.StatusBadRequest, "Missing AOR")
		return
	}
	aor := to.Address.User
	if u, ok := g.authUser.get(req); ok && u != aor {
		g.reject(r.Name, "auth_aor")
		g.reply(r, req, tx, sip.StatusForbidden, "Forbidden")
		return
	}
	now := time.Now()
	defExp := -1
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			g.reply(r, req, tx, sip.StatusBadRequest, "Bad Expires")
			return
		}
		defExp = n
	}
	cseq := req.CSeq().SeqNo
	callID := req.CallID().Value()
	src := sourceOf(req)
	contacts := req.GetHeaders("Contact")
	for _, h := range contacts {
		if strings.TrimSpace(h.Value()) == "*" {
			if len(contacts) != 1 || defExp != 0 {
				g.reply(r, req, tx, sip.StatusBadRequest, "Bad Wildcard Contact")
				return
			}
			reg.loc.RemoveAll(aor)
			g.registered(r, req, tx, aor, now)
			return
		}
	}
	if len(contacts) > 10 {
		g.reply(r, req, tx, sip.StatusForbidden, "Too Many Contacts")
		return
	}
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.Host == "" {
			g.reply(r, req, tx, sip.StatusBadRequest, "Bad Contact")
			return
		}
		exp := defExp
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				g.reply(r, req, tx, sip.StatusBadRequest, "Bad Contact Expires")
				return
			}
			exp = n
		}
		if exp < 0 {
			exp = int(reg.cfg.DefaultExpires.Std() / time.Second)
		}
		if minE := int(reg.cfg.MinExpires.Std() / time.Second); exp > 0 && exp < minE {
			g.reply(r, req, tx, sip.StatusIntervalToBrief, "Interval Too Brief", sip.NewHeader("Min-Expires", strconv.Itoa(minE)))
			return
		}
		exp = min(exp, int(reg.cfg.MaxExpires.Std()/time.Second))
		b := bindingFor(aor, c.Address, src, req.Transport())
		b.Expires, b.CallID, b.CSeq = now.Add(time.Duration(exp)*time.Second), callID, cseq
		if err := reg.loc.Update(b, now); err != nil {
			g.reject(r.Name, "registrar_full")
			g.reply(r, req, tx, sip.StatusServiceUnavailable, "Registrar Full", sip.NewHeader("Retry-After", "60"))
			return
		}
	}
	g.registered(r, req, tx, aor, now)
}

// bindingFor is where calls to a registered contact go: the Contact's
// address when it is the REGISTER's source, else (a PBX behind NAT, or a
// Contact naming a third party) the source the REGISTER came from.
func bindingFor(aor string, contact sip.Uri, src netip.AddrPort, transport string) policy.Binding {
	tr := strings.ToLower(transport)
	if v, ok := contact.UriParams.Get("transport"); ok && contact.UriParams != nil && (v == "udp" || v == "tcp") {
		tr = v
	}
	if tr != "tcp" {
		tr = "udp"
	}
	b := policy.Binding{AOR: aor, Contact: contact.String(), Transport: tr, Source: src.String()}
	port := contact.Port
	if port == 0 {
		port = 5060
	}
	if ip, err := netip.ParseAddr(topology.PlainHost(contact.Host)); err == nil && ip.Unmap() == src.Addr() {
		b.Host, b.Port = ip.Unmap().String(), port
	} else {
		b.Host, b.Port = src.Addr().String(), int(src.Port())
	}
	return b
}

// registered answers 200 with the AOR's current bindings.
func (g *guard) registered(r *Realm, req *sip.Request, tx sip.ServerTransaction, aor string, now time.Time) {
	reg := g.realms[r.Name].registrar
	var extra []sip.Header
	for _, b := range reg.loc.Lookup(aor, now) {
		secs := int(b.Expires.Sub(now).Round(time.Second) / time.Second)
		extra = append(extra, sip.NewHeader("Contact", fmt.Sprintf("<%s>;expires=%d", b.Contact, secs)))
	}
	extra = append(extra, sip.NewHeader("Date", now.UTC().Format(http1123)))
	g.reply(r, req, tx, sip.StatusOK, "OK", extra...)
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"

// routeRegistered puts the registered contacts of a call's target realm
// first in its decision's targets (the route's own targets stay as the
// fallback). The AOR is the registrar's configured one, or the dialled
// user.
func (g *guard) routeRegistered(dec policy.Decision, user string) policy.Decision {
	rg := g.realms[dec.ToRealm]
	if rg == nil || rg.registrar == nil {
		return dec
	}
	aor := rg.registrar.cfg.AOR
	if aor == "" {
		aor = user
	}
	bs := rg.registrar.loc.Lookup(aor, time.Now())
	if len(bs) == 0 {
		return dec
	}
	targets := make([]config.Target, 0, len(bs)+len(dec.Targets))
	for _, b := range bs {
		targets = append(targets, config.Target{Host: b.Host, Port: b.Port, Transport: b.Transport})
	}
	dec.Targets = append(targets, dec.Targets...)
	if len(dec.Trunks) > 0 { // keep Trunks parallel to Targets: contacts are no trunk's
		dec.Trunks = append(make([]*policy.Trunk, len(bs)), dec.Trunks...)
	}
	return dec
}
