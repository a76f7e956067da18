// Package deptest holds the test that keeps the package graph the shape
// docs/architecture.md draws: cmd -> sbc -> {topology, policy, mediarelay, cdr, hep},
// mediarelay -> bpf, and everything may import the leaves config and api.
// sbcd's parts under cmd/sbcd/internal (the failover order, the kernel
// datapath) have arrows of their own.
// It reads the graph from `go list -deps -json`, so it checks what the
// compiler links, not what a comment says.
package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/edgesbc/edgesbc"

// heavy are the modules a header filter, a config parser or the CLI must
// not link: the BPF loader, Raft and SRTP.
var heavy = []string{"github.com/cilium/ebpf", "github.com/hashicorp/raft", "github.com/pion/srtp"}

// light are the packages that must reach none of heavy.
var light = []string{"config", "topology", "policy", "api", "cmd/sbcctl", "dashboard"}

// leaves import nothing of the project.
var leaves = []string{"config", "api"}

// mustNotReach: a package (and its sub-packages) that reaches any of the
// listed project packages, directly or not, breaks an arrow.
var mustNotReach = map[string][]string{
	"topology":   {"sbc", "mediarelay", "bpf", "ha"},                       // knows no calls or media
	"policy":     {"sbc", "mediarelay", "bpf", "ha"},                       // sends no packets
	"mediarelay": {"sbc", "topology", "policy", "ha"},                      // knows no SIP
	"bpf":        {"sbc", "topology", "policy", "mediarelay", "ha"},        // forwards what it is told
	"ha":         {"sbc", "topology", "policy", "mediarelay", "bpf"},       // knows no calls
	"sbc":        {"ha"},                                                   // knows no Raft: CallStore is its own interface
	"cdr":        {"sbc", "mediarelay", "bpf", "ha", "topology", "policy"}, // sbc hands it records: it knows no SIP, media or Raft
	"hep":        {"sbc", "mediarelay", "bpf", "ha", "topology", "policy"}, // encodes and sends what it is handed
	// sbcd's own parts: the failover order drives the calls and flows
	// through interfaces it defines; the kernel datapath knows no calls
	// and no Raft.
	"cmd/sbcd/internal/failover": {"sbc", "mediarelay", "bpf", "topology", "policy"},
	"cmd/sbcd/internal/datapath": {"sbc", "ha", "topology", "policy"},
}

// mustNotImport: direct imports only (sbc reaches bpf through mediarelay,
// which is allowed; sbc using bpf itself is not).
var mustNotImport = map[string][]string{
	"sbc": {"bpf"},
}

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	DepOnly      bool
	Error        *struct{ Err string }
}

// graph is every package `go list -deps -test=false ./...` names, the
// standard library and other modules included, by import path.
func graph(t *testing.T) map[string]*pkg {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the dependency test runs `go list`: %v", err)
	}
	root, err := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-e", "-deps",
		"-json=ImportPath,Imports,TestImports,XTestImports,DepOnly,Error", "./...")
	cmd.Dir = strings.TrimSpace(string(root))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.Bytes())
	}
	g := map[string]*pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		g[p.ImportPath] = p
	}
	if g[mod+"/sbc"] == nil || g[mod+"/config"] == nil {
		t.Fatalf("go list in %s found neither %s/sbc nor %s/config", cmd.Dir, mod, mod)
	}
	return g
}

// rel is an import path inside the module without the module prefix, or
// "" for a package outside it.
func rel(path string) string {
	if r, ok := strings.CutPrefix(path, mod+"/"); ok {
		return r
	}
	return ""
}

// under says whether path is pkg or one of its sub-packages (pkg relative).
func under(path, pkg string) bool {
	r := rel(path)
	return r != "" && (r == pkg || strings.HasPrefix(r, pkg+"/"))
}

// chain is the import path from one package to the first package for
// which hit is true, through non-test imports ("" when none): the
// message then says which import to cut.
func chain(g map[string]*pkg, from string, hit func(string) bool) string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur != from && hit(cur) {
			var path []string
			for p := cur; p != ""; p = prev[p] {
				path = append(path, strings.TrimPrefix(p, mod+"/"))
			}
			slices.Reverse(path)
			return strings.Join(path, " -> ")
		}
		p := g[cur]
		if p == nil {
			continue
		}
		for _, im := range p.Imports {
			if _, seen := prev[im]; !seen {
				prev[im] = cur
				queue = append(queue, im)
			}
		}
	}
	return ""
}

func inModule(heavyMod string) func(string) bool {
	return func(p string) bool { return p == heavyMod || strings.HasPrefix(p, heavyMod+"/") }
}

// violations lists every broken rule in g; the test fails on any.
func violations(g map[string]*pkg) []string {
	var bad []string
	for _, l := range light {
		for _, h := range heavy {
			if c := chain(g, mod+"/"+l, inModule(h)); c != "" {
				bad = append(bad, fmt.Sprintf("%s must not link %s: %s", l, h, c))
			}
		}
	}
	for _, l := range leaves {
		if c := chain(g, mod+"/"+l, func(p string) bool { return rel(p) != "" }); c != "" {
			bad = append(bad, fmt.Sprintf("%s is a leaf and imports nothing of the project: %s", l, c))
		}
	}
	// sbcctl and the dashboard are clients of the admin API: api of the
	// project, nothing more.
	for _, client := range []string{"cmd/sbcctl", "dashboard"} {
		if c := chain(g, mod+"/"+client, func(p string) bool { return rel(p) != "" && rel(p) != "api" }); c != "" {
			bad = append(bad, client+" imports only api of the project: "+c)
		}
	}
	for _, p := range g[mod+"/cmd/sbcctl"].Imports {
		if rel(p) == "" && strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
			bad = append(bad, "cmd/sbcctl imports only api and the standard library, not "+p)
		}
	}
	var ours []string
	for path, p := range g {
		if rel(path) != "" && !p.DepOnly {
			ours = append(ours, path)
		}
	}
	slices.Sort(ours)
	for _, path := range ours {
		p := g[path]
		r := rel(path)
		// Nothing below cmd imports sbc back: only cmd/..., test/... and
		// sbc's own tree may, tests included.
		if !under(path, "cmd") && !under(path, "test") && !under(path, "sbc") {
			isSBC := func(q string) bool { return under(q, "sbc") }
			if c := chain(g, path, isSBC); c != "" {
				bad = append(bad, fmt.Sprintf("%s reaches sbc: only cmd/... and test/... may import it: %s", r, c))
			}
			for _, im := range slices.Concat(p.TestImports, p.XTestImports) {
				if im == path {
					continue // an external test package of path itself
				}
				if isSBC(im) {
					bad = append(bad, fmt.Sprintf("tests of %s import %s: only cmd/... and test/... may import sbc", r, rel(im)))
				} else if c := chain(g, im, isSBC); c != "" {
					bad = append(bad, fmt.Sprintf("tests of %s reach sbc: %s", r, c))
				}
			}
		}
		if under(path, "sbc/sipguard") {
			if c := chain(g, path, func(q string) bool { return q == mod+"/sbc" }); c != "" {
				bad = append(bad, fmt.Sprintf("sbc/sipguard imports sbc back: %s", c))
			}
		}
		// Nothing imports cmd or test.
		for _, im := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
			for _, top := range []string{"cmd", "test"} {
				if under(im, top) && !under(path, top) {
					bad = append(bad, fmt.Sprintf("%s imports %s: nothing imports %s", r, rel(im), top))
				}
			}
		}
		for owner, banned := range mustNotReach {
			if !under(path, owner) {
				continue
			}
			for _, b := range banned {
				if c := chain(g, path, func(q string) bool { return under(q, b) }); c != "" {
					bad = append(bad, fmt.Sprintf("%s must not reach %s: %s", owner, b, c))
				}
			}
		}
		for owner, banned := range mustNotImport {
			if rel(path) != owner {
				continue
			}
			for _, im := range p.Imports {
				for _, b := range banned {
					if under(im, b) {
						bad = append(bad, fmt.Sprintf("%s must not import %s itself", owner, rel(im)))
					}
				}
			}
		}
	}
	// sbc knows no Raft, even through a third module.
	if c := chain(g, mod+"/sbc", inModule("github.com/hashicorp/raft")); c != "" {
		bad = append(bad, "sbc must not link hashicorp/raft: "+c)
	}
	return bad
}

func TestPackageGraph(t *testing.T) {
	for _, v := range violations(graph(t)) {
		t.Error(v)
	}
}

// The rules must be able to fail: a graph with each kind of bad arrow
// added breaks them.
func TestPackageGraphRulesCatch(t *testing.T) {
	g := graph(t)
	add := func(from, to string) func() {
		p := g[from]
		old := p.Imports
		p.Imports = append(slices.Clone(old), to)
		return func() { p.Imports = old }
	}
	for _, c := range []struct{ from, to, want string }{
		{mod + "/config", mod + "/mediarelay", "config must not link github.com/cilium/ebpf: config -> mediarelay -> bpf -> github.com/cilium/ebpf"},
		{mod + "/config", mod + "/topology", "config is a leaf"},
		{mod + "/api", "github.com/hashicorp/raft", "api must not link github.com/hashicorp/raft"},
		{mod + "/topology", mod + "/sbc", "topology reaches sbc: only cmd/... and test/... may import it: topology -> sbc"},
		{mod + "/policy", mod + "/sbc/sipguard", "policy reaches sbc: only cmd/... and test/... may import it: policy -> sbc/sipguard"},
		{mod + "/mediarelay", mod + "/policy", "mediarelay must not reach policy"},
		{mod + "/sbc", mod + "/ha", "sbc must not reach ha"},
		{mod + "/cdr", mod + "/mediarelay", "cdr must not reach mediarelay"},
		{mod + "/cdr", mod + "/sbc", "cdr reaches sbc"},
		{mod + "/hep", mod + "/mediarelay", "hep must not reach mediarelay"},
		{mod + "/sbc", mod + "/bpf", "sbc must not import bpf itself"},
		{mod + "/cmd/sbcctl", mod + "/config", "cmd/sbcctl imports only api of the project: cmd/sbcctl -> config"},
		{mod + "/cmd/sbcctl", "go.yaml.in/yaml/v3", "not go.yaml.in/yaml/v3"},
		{mod + "/cmd/sbcctl", mod + "/ha", "cmd/sbcctl must not link github.com/hashicorp/raft"},
		{mod + "/dashboard", mod + "/config", "dashboard imports only api of the project: dashboard -> config"},
		{mod + "/dashboard", mod + "/sbc", "dashboard reaches sbc"},
		{mod + "/internal/testphone", mod + "/sbc", "internal/testphone reaches sbc"},
		{mod + "/bpf", mod + "/test", "nothing imports test"},
		{mod + "/cmd/sbcd/internal/failover", mod + "/sbc", "cmd/sbcd/internal/failover must not reach sbc"},
		{mod + "/cmd/sbcd/internal/failover", mod + "/mediarelay", "cmd/sbcd/internal/failover must not reach bpf: cmd/sbcd/internal/failover -> mediarelay -> bpf"},
		{mod + "/cmd/sbcd/internal/datapath", mod + "/ha", "cmd/sbcd/internal/datapath must not reach ha"},
		{mod + "/cmd/sbcd/internal/datapath", mod + "/sbc", "cmd/sbcd/internal/datapath must not reach sbc"},
	} {
		undo := add(c.from, c.to)
		v := violations(g)
		undo()
		if !slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, c.want) }) {
			t.Errorf("%s -> %s: no violation %q in %q", rel(c.from), c.to, c.want, v)
		}
	}
	if v := violations(g); len(v) != 0 {
		t.Errorf("graph not restored: %q", v)
	}
}
