package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// sbcd -check-config refuses the header policy traps with the key named
// and exits 1, and passes the shipped configs.
func TestCheckConfigHeaderTraps(t *testing.T) {
	const base = `realms:
  - name: carrier
    listen: 127.0.0.1:5060
%s  - name: enterprise
    listen: 127.0.0.2:5060
routes:
  - {name: in, from_realm: carrier, to_realm: enterprise, targets: ["127.0.0.3:5060"]}
`
	bad := map[string]string{
		"empty allow":       "    headers: {mode: allow, list: []}\n",
		"supported listed":  "    headers: {list: [Supported]}\n",
		"rseq listed":       "    headers: {list: [RSeq]}\n",
		"replace with deny": "    headers: {mode: deny, replace: true, list: [X-A]}\n",
	}
	want := map[string]string{
		"empty allow":       "realms[0].headers.list",
		"supported listed":  "realms[0].headers.list[0]",
		"rseq listed":       "realms[0].headers.list[0]",
		"replace with deny": "realms[0].headers.replace",
	}
	dir := t.TempDir()
	for name, block := range bad {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		if err := os.WriteFile(p, []byte(strings.Replace(base, "%s", block, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sbcdBin, "-check-config", p).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), want[name]) {
			t.Errorf("%s: exit %v, output %q; want exit 1 naming %s", name, err, out, want[name])
		}
	}
	shipped, _ := filepath.Glob(filepath.Join("..", "..", "configs", "*.yaml"))
	if len(shipped) == 0 {
		t.Fatal("no shipped configs found")
	}
	for _, p := range shipped {
		if strings.Contains(p, "witness") { // the witness role's own config: no realms
			continue
		}
		if out, err := exec.Command(sbcdBin, "-check-config", p).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", p, err, out)
		}
	}
}
