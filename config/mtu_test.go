package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/config"
)

// realms[].mtu: 1300 by default (RFC 3261 18.1.1), its edges accepted,
// anything past them refused naming the key.
func TestRealmMTU(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Realms {
		if r.MTU != 1300 {
			t.Errorf("realm %s: mtu = %d, want 1300", r.Name, r.MTU)
		}
	}
	at := "    listen: 198.51.100.1:5060\n"
	for _, ok := range []string{"576", "1500", "65507"} {
		if c, err := config.Parse([]byte(edit(t, at, at+"    mtu: "+ok+"\n"))); err != nil || c.Realms[1].MTU == 1300 {
			t.Errorf("mtu %s: %v", ok, err)
		}
	}
	for _, bad := range []string{"575", "65508", "-1"} {
		_, err := config.Parse([]byte(edit(t, at, at+"    mtu: "+bad+"\n")))
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "realms[1].mtu") {
			t.Errorf("mtu %s: error %v, want one naming realms[1].mtu", bad, err)
		}
	}
}
