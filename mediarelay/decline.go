package mediarelay

import (
	"fmt"
	"strings"
)

// Decline is the answer that refuses every stream of an offer that came
// on leg from (RFC 3264 6: port 0 for each m= line, in the offer's order,
// with its media type, profile and first format), from the SBC's address
// on that leg. The B2BUA puts it in the ACK of a 2xx whose offer nobody
// will answer (a losing fork's, or one that lost to a CANCEL) before the
// BYE that follows: RFC 3261 13.2.2.4 wants a valid answer there. The
// call's media is not touched: no port, stream or state.
func (a *Anchor) Decline(ref CallRef, from Side, offer []byte) ([]byte, error) {
	if from != SideA && from != SideB {
		return nil, fmt.Errorf("mediarelay: decline: bad side %d", from)
	}
	f, ok := a.realms[ref.Realms[from]]
	if !ok {
		return nil, fmt.Errorf("media: no media config for realm %q", ref.Realms[from])
	}
	sess, err := ParseSDP(offer)
	if err != nil {
		return nil, err
	}
	ip := "IP4"
	if f.cfg.Addr.Unmap().Is6() {
		ip = "IP6"
	}
	addr := f.cfg.Addr.Unmap().String()
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=EdgeSBC 1 1 IN %s %s\r\ns=-\r\nc=IN %s %s\r\nt=0 0\r\n", ip, addr, ip, addr)
	for _, m := range sess.Media {
		format := "0"
		if len(m.Formats) > 0 {
			format = m.Formats[0]
		}
		fmt.Fprintf(&b, "m=%s 0 %s %s\r\n", m.Kind, m.Proto, format)
	}
	return []byte(b.String()), nil
}
