package policy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// NAPTR is one NAPTR record (RFC 3403) as RFC 3263 uses it.
type NAPTR struct {
	Order, Preference uint16
	Flags, Service    string
	Regexp            string
	Replacement       string
}

// NAPTRLookuper is a Resolver that can also look up NAPTR records. Go's
// resolver cannot, so DNS below asks the name servers itself.
type NAPTRLookuper interface {
	LookupNAPTR(ctx context.Context, name string) ([]NAPTR, error)
}

// typeNAPTR is the NAPTR RR type (RFC 3403); dnsmessage has no constant.
const typeNAPTR dnsmessage.Type = 35

// DNS is the resolver trunks use: Go's resolver for SRV and A/AAAA, plus
// NAPTR queries over UDP to the same name servers (from /etc/resolv.conf
// unless Servers is set). A truncated NAPTR answer is used as far as it
// goes (no TCP retry).
type DNS struct {
	*net.Resolver
	Servers []string // ip:port
	Timeout time.Duration
}

// NewDNS is the system's resolver with NAPTR support.
func NewDNS() *DNS { return &DNS{Resolver: net.DefaultResolver} }

// ErrNoNAPTR means no name server answered a NAPTR query.
var ErrNoNAPTR = errors.New("NAPTR lookup failed")

// LookupNAPTR asks each name server in turn for name's NAPTR records.
func (d *DNS) LookupNAPTR(ctx context.Context, name string) ([]NAPTR, error) {
	servers := d.Servers
	if len(servers) == 0 {
		servers = systemNameservers()
	}
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	fqdn := name
	if !strings.HasSuffix(fqdn, ".") {
		fqdn += "."
	}
	qname, err := dnsmessage.NewName(fqdn)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoNAPTR, name, err)
	}
	var last error = fmt.Errorf("%w: %s: no name server", ErrNoNAPTR, name)
	for _, srv := range servers {
		recs, err := queryNAPTR(ctx, srv, qname, timeout)
		if err == nil {
			return recs, nil
		}
		last = err
	}
	return nil, last
}

func queryNAPTR(ctx context.Context, server string, qname dnsmessage.Name, timeout time.Duration) ([]NAPTR, error) {
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: qname, Type: typeNAPTR, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(dctx, "udp", server)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoNAPTR, server, err)
	}
	defer conn.Close()
	if dl, ok := dctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write(q); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoNAPTR, server, err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNoNAPTR, server, err)
		}
		recs, match, err := parseNAPTRAnswer(buf[:n], id, qname)
		if !match {
			continue // not our answer: keep reading until the deadline
		}
		return recs, err
	}
}

// parseNAPTRAnswer reads the NAPTR records of an answer to query id.
// match is false when the message is not that answer.
func parseNAPTRAnswer(msg []byte, id uint16, qname dnsmessage.Name) (recs []NAPTR, match bool, err error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.ID != id || !h.Response {
		return nil, false, nil
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 || !strings.EqualFold(qs[0].Name.String(), qname.String()) || qs[0].Type != typeNAPTR {
		return nil, false, nil
	}
	switch h.RCode {
	case dnsmessage.RCodeSuccess, dnsmessage.RCodeNameError:
	default:
		return nil, true, fmt.Errorf("%w: %s: %v", ErrNoNAPTR, qname, h.RCode)
	}
	for {
		rh, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return recs, true, nil
		}
		if err != nil {
			return recs, true, nil // truncated or malformed: what was read
		}
		if rh.Type != typeNAPTR {
			if err := p.SkipAnswer(); err != nil {
				return recs, true, nil
			}
			continue
		}
		u, err := p.UnknownResource()
		if err != nil {
			return recs, true, nil
		}
		if r, ok := parseNAPTRData(u.Data); ok {
			recs = append(recs, r)
		}
	}
}

// parseNAPTRData parses NAPTR RDATA: ORDER, PREFERENCE, FLAGS, SERVICES,
// REGEXP (character-strings) and REPLACEMENT (an uncompressed name, RFC
// 3403 4.1). Bounded: anything short or odd is refused.
func parseNAPTRData(b []byte) (NAPTR, bool) {
	var r NAPTR
	if len(b) < 4 {
		return r, false
	}
	r.Order, r.Preference = binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
	off := 4
	var strs [3]string
	for i := range strs {
		if off >= len(b) {
			return r, false
		}
		n := int(b[off])
		off++
		if off+n > len(b) {
			return r, false
		}
		strs[i] = string(b[off : off+n])
		off += n
	}
	r.Flags, r.Service, r.Regexp = strs[0], strs[1], strs[2]
	var labels []string
	for {
		if off >= len(b) {
			return r, false
		}
		n := int(b[off])
		off++
		if n == 0 {
			break
		}
		if n > 63 || off+n > len(b) || len(labels) > 127 {
			return r, false // compression pointer or overrun
		}
		labels = append(labels, string(b[off:off+n]))
		off += n
	}
	r.Replacement = strings.Join(labels, ".")
	return r, true
}

// naptrSRVNames picks, from a domain's NAPTR records, the SRV names for a
// transport (RFC 3263 4.1: flag "s", service SIP+D2U for udp or SIP+D2T
// for tcp), by order then preference.
func naptrSRVNames(recs []NAPTR, transport string) []string {
	want := "SIP+D2U"
	if transport == "tcp" {
		want = "SIP+D2T"
	}
	var pick []NAPTR
	for _, r := range recs {
		if strings.EqualFold(r.Flags, "s") && strings.EqualFold(r.Service, want) && r.Replacement != "" {
			pick = append(pick, r)
		}
	}
	sort.SliceStable(pick, func(i, j int) bool {
		if pick[i].Order != pick[j].Order {
			return pick[i].Order < pick[j].Order
		}
		return pick[i].Preference < pick[j].Preference
	})
	out := make([]string, 0, len(pick))
	for _, r := range pick {
		out = append(out, r.Replacement)
	}
	return out
}

// systemNameservers reads /etc/resolv.conf's nameserver lines.
func systemNameservers() []string {
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return []string{"127.0.0.1:53"}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < 3 {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			if ip := net.ParseIP(fields[1]); ip != nil {
				out = append(out, net.JoinHostPort(ip.String(), "53"))
			}
		}
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1:53"}
	}
	return out
}
