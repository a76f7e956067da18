package config_test

import (
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/config"
)

func TestBodiesConfig(t *testing.T) {
	body := func(block string) string {
		return edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    bodies:\n"+block)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"bad isup", body("      isup: keep\n"), "realms[1].bodies.isup"},
		{"not a type", body("      allow: [isup]\n"), "realms[1].bodies.allow[0]"},
		{"parameters", body("      allow: [\"text/plain; charset=utf-8\"]\n"), "realms[1].bodies.allow[0]"},
		{"multipart", body("      allow: [multipart/mixed]\n"), "handled by the SBC"},
		{"sdp", body("      allow: [text/plain, application/SDP]\n"), "realms[1].bodies.allow[1]"},
	} {
		if _, err := config.Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %q", tc.name, err, tc.want)
		}
	}
	c, err := config.Parse([]byte(body("      isup: pass\n      allow: [application/vnd.example+xml]\n")))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Realms[1].Bodies; b.ISUPPolicy() != "pass" || len(b.Allow) != 1 {
		t.Errorf("bodies: %+v", b)
	}
	if p := c.Realms[0].Bodies.ISUPPolicy(); p != "drop" {
		t.Errorf("default isup policy %q, want drop", p)
	}
}
