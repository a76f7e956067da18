package policy_test

import (
	"context"
	"encoding/binary"
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/policy"
)

// dnsServer is a small authoritative DNS server on loopback UDP answering
// from fixed zones: what the trunk's resolver meets in the field, without
// a network.
type dnsServer struct {
	addr    string
	naptr   map[string][]policy.NAPTR
	srv     map[string][]dnsmessage.SRVResource
	a       map[string][4]byte
	queries atomic.Int64
	raw     map[string][]byte // name -> raw NAPTR RDATA (hostile answers)
}

func startDNS(t *testing.T, d *dnsServer) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	d.addr = pc.LocalAddr().String()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			d.queries.Add(1)
			if out := d.answer(buf[:n]); out != nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return d
}

func naptrData(r policy.NAPTR) []byte {
	b := binary.BigEndian.AppendUint16(nil, r.Order)
	b = binary.BigEndian.AppendUint16(b, r.Preference)
	for _, s := range []string{r.Flags, r.Service, r.Regexp} {
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	for _, l := range strings.Split(strings.TrimSuffix(r.Replacement, "."), ".") {
		if l != "" {
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	return append(b, 0)
}

func (d *dnsServer) answer(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil
	}
	question := qs[0]
	name := strings.ToLower(strings.TrimSuffix(question.Name.String(), "."))
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(question)
	_ = b.StartAnswers()
	hdr := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60}
	found := false
	switch question.Type {
	case dnsmessage.Type(35):
		if raw, ok := d.raw[name]; ok {
			found = true
			_ = b.UnknownResource(hdr, dnsmessage.UnknownResource{Type: 35, Data: raw})
		}
		for _, r := range d.naptr[name] {
			found = true
			_ = b.UnknownResource(hdr, dnsmessage.UnknownResource{Type: 35, Data: naptrData(r)})
		}
	case dnsmessage.TypeSRV:
		for _, r := range d.srv[name] {
			found = true
			_ = b.SRVResource(hdr, r)
		}
	case dnsmessage.TypeA:
		if a, ok := d.a[name]; ok {
			found = true
			_ = b.AResource(hdr, dnsmessage.AResource{A: a})
		}
	case dnsmessage.TypeAAAA:
		_, found = d.a[name] // the name exists, no AAAA
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	if !found && !d.exists(name) {
		out[3] |= 3 // NXDOMAIN
	}
	return out
}

func (d *dnsServer) exists(name string) bool {
	_, a := d.a[name]
	_, s := d.srv[name]
	_, n := d.naptr[name]
	return a || s || n
}

func (d *dnsServer) resolver() *policy.DNS {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", d.addr)
	}}
	return &policy.DNS{Resolver: r, Servers: []string{d.addr}, Timeout: time.Second}
}

func mustName(s string) dnsmessage.Name { return dnsmessage.MustNewName(s) }

// TestTrunkResolveRealDNS: Go's resolver and the NAPTR client against a
// DNS server on loopback. carrier.test has NAPTR records pointing UDP and
// TCP at different SRV names; plain.test has only SRV; bare.test only an
// A record.
func TestTrunkResolveRealDNS(t *testing.T) {
	d := startDNS(t, &dnsServer{
		naptr: map[string][]policy.NAPTR{
			"carrier.test": {
				{Order: 20, Preference: 10, Flags: "s", Service: "SIP+D2U", Replacement: "_sip._udp.backup.carrier.test"},
				{Order: 10, Preference: 10, Flags: "s", Service: "SIP+D2U", Replacement: "_sip._udp.main.carrier.test"},
				{Order: 10, Preference: 20, Flags: "s", Service: "SIP+D2T", Replacement: "_sip._tcp.carrier.test"},
				{Order: 5, Preference: 10, Flags: "s", Service: "SIPS+D2T", Replacement: "_sips._tcp.carrier.test"},
			},
		},
		srv: map[string][]dnsmessage.SRVResource{
			"_sip._udp.main.carrier.test":   {{Priority: 10, Weight: 1, Port: 5060, Target: mustName("p1.carrier.test.")}},
			"_sip._udp.backup.carrier.test": {{Priority: 10, Weight: 1, Port: 5080, Target: mustName("p2.carrier.test.")}},
			"_sip._tcp.carrier.test":        {{Priority: 10, Weight: 1, Port: 5070, Target: mustName("p3.carrier.test.")}},
			"_sip._udp.carrier.test":        {{Priority: 10, Weight: 1, Port: 5999, Target: mustName("wrong.carrier.test.")}}, // shadowed by NAPTR
			"_sip._udp.plain.test":          {{Priority: 10, Weight: 1, Port: 5062, Target: mustName("p4.plain.test.")}},
			"_sips._tcp.carrier.test":       {{Priority: 10, Weight: 1, Port: 5061, Target: mustName("p3.carrier.test.")}},
			"_sips._tcp.plain.test":         {{Priority: 10, Weight: 1, Port: 5063, Target: mustName("p4.plain.test.")}},
		},
		a: map[string][4]byte{
			"p1.carrier.test": {203, 0, 113, 51}, "p2.carrier.test": {203, 0, 113, 52}, "p3.carrier.test": {203, 0, 113, 53},
			"wrong.carrier.test": {203, 0, 113, 59}, "p4.plain.test": {203, 0, 113, 54}, "bare.test": {203, 0, 113, 55},
		},
	})
	res := d.resolver()
	cases := []struct {
		target string
		want   []string
	}{
		{"carrier.test", []string{"203.0.113.51:5060;transport=udp", "203.0.113.52:5080;transport=udp"}},
		{"carrier.test;transport=tcp", []string{"203.0.113.53:5070;transport=tcp"}},
		{"carrier.test;transport=tls", []string{"203.0.113.53:5061;transport=tls"}}, // NAPTR SIPS+D2T
		{"plain.test;transport=tls", []string{"203.0.113.54:5063;transport=tls"}},   // no NAPTR: SRV _sips._tcp
		{"bare.test;transport=tls", []string{"203.0.113.55:5061;transport=tls"}},    // A on 5061
		{"plain.test", []string{"203.0.113.54:5062;transport=udp"}},                 // no NAPTR: SRV
		{"bare.test", []string{"203.0.113.55:5060;transport=udp"}},                  // no NAPTR, no SRV: A on 5060
		{"p1.carrier.test:5090", []string{"203.0.113.51:5090;transport=udp"}},       // port given: A only
	}
	for _, c := range cases {
		tr := mustTrunk(t, config.Trunk{Name: "x", Realm: "carrier", Targets: []string{c.target}})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := tr.Resolve(ctx, res)
		cancel()
		if err != nil {
			t.Errorf("%s: %v", c.target, err)
			continue
		}
		var got []string
		for _, tg := range tr.Targets() {
			got = append(got, tg.String())
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s resolved to %v, want %v", c.target, got, c.want)
		}
	}
	tr := mustTrunk(t, config.Trunk{Name: "x", Realm: "carrier", Targets: []string{"nowhere.test"}})
	if err := tr.Resolve(context.Background(), res); err == nil {
		t.Fatal("nowhere.test resolved")
	}
}

// TestNAPTRHostile: malformed NAPTR data is skipped, not trusted, and a
// silent server times out within the bound.
func TestNAPTRHostile(t *testing.T) {
	good := policy.NAPTR{Order: 1, Preference: 1, Flags: "s", Service: "SIP+D2U", Replacement: "_sip._udp.ok.test"}
	d := startDNS(t, &dnsServer{
		naptr: map[string][]policy.NAPTR{"h.test": {good}},
		raw: map[string][]byte{"h.test": {0, 1, 0, 1, 9, 's'}, // string overruns
			"p.test": {0, 1, 0, 1, 1, 's', 7, 'S', 'I', 'P', '+', 'D', '2', 'U', 0, 0xc0, 0x0c}}, // compressed replacement
	})
	res := d.resolver()
	recs, err := res.LookupNAPTR(context.Background(), "h.test")
	if err != nil || len(recs) != 1 || recs[0] != good {
		t.Fatalf("h.test: %+v %v", recs, err)
	}
	if recs, err := res.LookupNAPTR(context.Background(), "p.test"); err != nil || len(recs) != 0 {
		t.Fatalf("p.test: %+v %v", recs, err)
	}
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	_, err = (&policy.DNS{Resolver: net.DefaultResolver, Servers: []string{silent.LocalAddr().String()}, Timeout: 200 * time.Millisecond}).LookupNAPTR(context.Background(), "x.test")
	if err == nil || time.Since(start) > time.Second {
		t.Fatalf("silent server: %v after %v", err, time.Since(start))
	}
}
