package topology_test

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/config"
	"github.com/edgesbc/edgesbc/topology"
)

const insideHost = "pbx.corp.example"

// crossed builds leg B's INVITE from a leg A request carrying hdrs, from
// origin o into a realm (trusted or not) where the SBC is 198.51.100.1.
func crossed(t *testing.T, o *topology.Origin, toTrusted bool, hdrs ...[2]string) *sip.Request {
	t.Helper()
	src := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "100", Host: "203.0.113.1"})
	for _, h := range hdrs {
		src.AppendHeader(sip.NewHeader(h[0], h[1]))
	}
	f := topology.NewHeaderFilter("deny", nil) // the widest policy: still nothing raw
	f.SetTrusted(toTrusted)
	l := legBLocal
	l.From = o
	out := topology.BuildRequest(sip.INVITE, legBDialog(), 1, 70, l, f, src, nil, "")
	if s := out.String(); strings.Contains(s, insideHost) || strings.Contains(s, "10.1.2.3") {
		t.Fatalf("an inside host crossed:\n%s", s)
	}
	return parseReq(t, out.String())
}

func TestIdentityCrossing(t *testing.T) {
	trusted := &topology.Origin{Trusted: true}
	untrusted := &topology.Origin{}
	authed := &topology.Origin{Authenticated: true}
	convert := &topology.Origin{Trusted: true, RPID: config.RPIDConvert}
	plus := &topology.Origin{Trusted: true, Normalize: func(u string) string { return strings.Replace(u, "+49", "0", 1) }}
	pai := [2]string{"P-Asserted-Identity", `"Alice" <sip:+4930111@` + insideHost + `;user=phone>`}
	paiTel := [2]string{"P-Asserted-Identity", "<tel:+4930111>"}
	ppi := [2]string{"P-Preferred-Identity", "<sip:alice@10.1.2.3>"}
	privID := [2]string{"Privacy", "id"}
	cases := []struct {
		name      string
		o         *topology.Origin
		toTrusted bool
		hdrs      [][2]string
		want      map[string]string // header -> joined values, "" none
	}{
		{"trusted to trusted: PAI and PPI, host rewritten", trusted, true, [][2]string{pai, paiTel, ppi},
			map[string]string{"P-Asserted-Identity": `"Alice" <sip:+4930111@198.51.100.1> | <tel:+4930111>`, "P-Preferred-Identity": "<sip:alice@198.51.100.1>"}},
		{"user normalized like From", plus, true, [][2]string{pai},
			map[string]string{"P-Asserted-Identity": `"Alice" <sip:030111@198.51.100.1>`}},
		{"trusted to untrusted: PAI, no PPI", trusted, false, [][2]string{pai, ppi},
			map[string]string{"P-Asserted-Identity": `"Alice" <sip:+4930111@198.51.100.1>`, "P-Preferred-Identity": ""}},
		{"Privacy id to untrusted: no PAI", trusted, false, [][2]string{pai, privID},
			map[string]string{"P-Asserted-Identity": "", "Privacy": "id"}},
		{"Privacy id to trusted: PAI kept with Privacy", trusted, true, [][2]string{pai, {"Privacy", "header;id"}},
			map[string]string{"P-Asserted-Identity": `"Alice" <sip:+4930111@198.51.100.1>`, "Privacy": "header;id"}},
		{"untrusted source: its PAI is not believed", untrusted, true, [][2]string{pai, ppi},
			map[string]string{"P-Asserted-Identity": "", "P-Preferred-Identity": ""}},
		{"untrusted, authenticated: PPI becomes PAI", authed, true, [][2]string{pai, ppi},
			map[string]string{"P-Asserted-Identity": "<sip:alice@198.51.100.1>", "P-Preferred-Identity": ""}},
		{"no origin: nothing", nil, true, [][2]string{pai, ppi},
			map[string]string{"P-Asserted-Identity": "", "P-Preferred-Identity": ""}},
		{"RPID dropped by default", trusted, true, [][2]string{{"Remote-Party-ID", `"Bob" <sip:200@10.1.2.3>;party=calling;screen=yes`}},
			map[string]string{"P-Asserted-Identity": "", "Remote-Party-ID": ""}},
		{"RPID converted", convert, true, [][2]string{{"Remote-Party-ID", `"Bob" <sip:200@10.1.2.3>;party=calling;screen=yes;privacy=full`}},
			map[string]string{"P-Asserted-Identity": `"Bob" <sip:200@198.51.100.1>`, "Privacy": "id", "Remote-Party-ID": ""}},
		{"RPID privacy full to untrusted: no PAI", convert, false, [][2]string{{"Remote-Party-ID", `<sip:200@10.1.2.3>;privacy=full`}},
			map[string]string{"P-Asserted-Identity": "", "Privacy": "id"}},
		{"RPID of the called party is not the caller's", convert, true, [][2]string{{"Remote-Party-ID", `<sip:200@10.1.2.3>;party=called`}},
			map[string]string{"P-Asserted-Identity": ""}},
		{"RPID does not override a PAI", convert, true, [][2]string{pai, {"Remote-Party-ID", `<sip:200@10.1.2.3>`}},
			map[string]string{"P-Asserted-Identity": `"Alice" <sip:+4930111@198.51.100.1>`}},
		// Hostile input: bounded, rebuilt or dropped, never raw.
		{"no angle brackets: rebuilt", trusted, true, [][2]string{{"P-Asserted-Identity", "sip:+4930111@" + insideHost + ";x=y"}},
			map[string]string{"P-Asserted-Identity": "<sip:+4930111@198.51.100.1>"}},
		{"unclosed bracket: dropped", trusted, true, [][2]string{{"P-Asserted-Identity", "<sip:+4930111@" + insideHost}},
			map[string]string{"P-Asserted-Identity": ""}},
		{"huge: dropped", trusted, true, [][2]string{{"P-Asserted-Identity", "<sip:" + strings.Repeat("1", 600) + "@" + insideHost + ">"}},
			map[string]string{"P-Asserted-Identity": ""}},
		{"long user: dropped", trusted, true, [][2]string{{"P-Asserted-Identity", "<sip:" + strings.Repeat("1", 65) + "@" + insideHost + ">"}},
			map[string]string{"P-Asserted-Identity": ""}},
		{"many values: one sip, one tel", trusted, true, [][2]string{{"P-Asserted-Identity", strings.Repeat("<sip:1@"+insideHost+">, <tel:+2>, ", 12)}},
			map[string]string{"P-Asserted-Identity": "<sip:1@198.51.100.1> | <tel:+2>"}},
		{"many headers: one sip", trusted, true, [][2]string{{"P-Asserted-Identity", "<sip:1@" + insideHost + ">"}, {"P-Asserted-Identity", "<sip:2@" + insideHost + ">"}, {"P-Asserted-Identity", "<sip:3@10.1.2.3>"}},
			map[string]string{"P-Asserted-Identity": "<sip:1@198.51.100.1>"}},
		{"host smuggled after the user: rebuilt", trusted, true, [][2]string{{"P-Asserted-Identity", "<sip:a@" + insideHost + "@x>"}},
			map[string]string{"P-Asserted-Identity": "<sip:a@198.51.100.1>"}},
		{"other scheme: dropped", trusted, true, [][2]string{{"P-Asserted-Identity", "<http://" + insideHost + "/>"}},
			map[string]string{"P-Asserted-Identity": ""}},
		{"display name with CRLF-ish bytes: dropped name", trusted, true, [][2]string{{"P-Asserted-Identity", "\"A\x01B\" <sip:1@" + insideHost + ">"}},
			map[string]string{"P-Asserted-Identity": "<sip:1@198.51.100.1>"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := crossed(t, c.o, c.toTrusted, c.hdrs...)
			for h, want := range c.want {
				if got := headerValues(b, h); got != want {
					t.Errorf("%s = %q, want %q\n%s", h, got, want, b)
				}
			}
		})
	}

	// A realm whose list leaves Privacy out still gets it with the PAI.
	src := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "100", Host: "203.0.113.1"})
	src.AppendHeader(sip.NewHeader(pai[0], pai[1]))
	src.AppendHeader(sip.NewHeader("Privacy", "id"))
	f := topology.NewHeaderFilter("allow", []string{"Subject"})
	f.SetTrusted(true)
	l := legBLocal
	l.From = trusted
	out := topology.BuildRequest(sip.INVITE, legBDialog(), 1, 70, l, f, src, nil, "")
	if got := headerValues(out, "Privacy"); got != "id" || headerValues(out, "P-Asserted-Identity") == "" {
		t.Errorf("PAI without its Privacy: Privacy %q\n%s", got, out)
	}
}

func TestRedirectHistory(t *testing.T) {
	trusted := &topology.Origin{Trusted: true}
	div := [2]string{"Diversion", "<sip:+4930222@" + insideHost + ";user=phone>;reason=unconditional;counter=1;x-inside=" + insideHost}
	divPriv := [2]string{"Diversion", "<sip:+4930333@10.1.2.3>;reason=user-busy;privacy=full"}
	hi1 := [2]string{"History-Info", "<sip:+4930222@" + insideHost + "?Reason=SIP%3Bcause%3D302&X-Secret=" + insideHost + ">;index=1"}
	hi2 := [2]string{"History-Info", "<sip:+4930444@10.1.2.3;maddr=10.1.2.3>;index=1.1;rc=1"}
	cases := []struct {
		name      string
		toTrusted bool
		hdrs      [][2]string
		want      map[string]string
	}{
		{"to trusted", true, [][2]string{div, divPriv, hi1, hi2}, map[string]string{
			"Diversion":    "<sip:+4930222@198.51.100.1>;reason=unconditional;counter=1 | <sip:+4930333@198.51.100.1>;reason=user-busy;privacy=full",
			"History-Info": "<sip:+4930222@198.51.100.1?Reason=SIP%3Bcause%3D302>;index=1 | <sip:+4930444@198.51.100.1>;index=1.1;rc=1",
		}},
		{"to untrusted: private entries left out", false, [][2]string{div, divPriv, hi1}, map[string]string{
			"Diversion":    "<sip:+4930222@198.51.100.1>;reason=unconditional;counter=1",
			"History-Info": "<sip:+4930222@198.51.100.1?Reason=SIP%3Bcause%3D302>;index=1",
		}},
		{"Privacy history to untrusted: no History-Info", false, [][2]string{hi1, {"Privacy", "history"}}, map[string]string{"History-Info": ""}},
		{"Privacy history to trusted: kept", true, [][2]string{hi2, {"Privacy", "history"}}, map[string]string{"History-Info": "<sip:+4930444@198.51.100.1>;index=1.1;rc=1"}},
		{"bounded: 16 entries", true, [][2]string{{"Diversion", strings.Repeat("<sip:1@"+insideHost+">;counter=1, ", 20)}}, map[string]string{
			"Diversion": strings.TrimSuffix(strings.Repeat("<sip:1@198.51.100.1>;counter=1 | ", 16), " | "),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := crossed(t, trusted, c.toTrusted, c.hdrs...)
			for h, want := range c.want {
				if got := headerValues(b, h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
		})
	}
	if v := topology.DiversionValue("+4930222", "203.0.113.1", "deflection"); v != "<sip:+4930222@203.0.113.1>;reason=deflection;counter=1" {
		t.Errorf("DiversionValue = %q", v)
	}
	if v := topology.DiversionValue("a@"+insideHost, "203.0.113.1", "x"); v != "" {
		t.Errorf("DiversionValue of an unsafe user = %q, want none", v)
	}
}

// Connected identity in a response crosses the same way.
func TestIdentityInResponse(t *testing.T) {
	req := parseReq(t, legA)
	src := parseRes(t, legBResponse)
	src.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<sip:200@"+insideHost+">"))
	src.AppendHeader(sip.NewHeader("History-Info", "<sip:200@"+insideHost+">;index=1"))
	f := topology.NewHeaderFilter("allow", config.DefaultAllowedHeaders)
	f.SetTrusted(true)
	l := legALocal
	l.From = &topology.Origin{Trusted: true}
	res := topology.BuildResponse(req, 200, "OK", "t", true, l, f, src, nil, "")
	if s := res.String(); strings.Contains(s, insideHost) {
		t.Fatalf("an inside host crossed:\n%s", s)
	}
	if got := headerValues(res, "P-Asserted-Identity"); got != "<sip:200@203.0.113.1>" {
		t.Errorf("PAI = %q", got)
	}
	if got := headerValues(res, "History-Info"); got != "<sip:200@203.0.113.1>;index=1" {
		t.Errorf("History-Info = %q", got)
	}
}

func FuzzIdentityNeverRaw(f *testing.F) {
	f.Add(`"A" <sip:+1@h.example>;x=1, <tel:+2>`, "<sip:1@h.example>;reason=a")
	f.Add("sip:1@h.example", `<sip:1@h.example?Reason=x&Privacy=history>;index=1`)
	f.Add(`"<sip:2@h.example>" <sip:1@h.example>`, `<<<>>>,,"`)
	f.Fuzz(func(t *testing.T, pai, hist string) {
		if strings.ContainsAny(pai+hist, "\r\n") {
			return
		}
		src := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "1", Host: "203.0.113.1"})
		src.AppendHeader(sip.NewHeader("P-Asserted-Identity", pai))
		src.AppendHeader(sip.NewHeader("Diversion", hist))
		src.AppendHeader(sip.NewHeader("History-Info", hist))
		flt := topology.NewHeaderFilter("deny", nil)
		flt.SetTrusted(true)
		l := legBLocal
		l.From = &topology.Origin{Trusted: true}
		out := topology.BuildRequest(sip.INVITE, legBDialog(), 1, 70, l, flt, src, nil, "")
		for _, name := range []string{"P-Asserted-Identity", "Diversion", "History-Info"} {
			for _, h := range out.GetHeaders(name) {
				if strings.Contains(h.Value(), "h.example") || len(h.Value()) > 1024 {
					t.Fatalf("%s crossed raw or unbounded: %q", name, h.Value())
				}
			}
		}
	})
}
