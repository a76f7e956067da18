package config

import (
	"errors"
	"strings"
	"testing"
)

func TestMediaDatapath(t *testing.T) {
	base := "realms:\n  - {name: a, listen: \"127.0.0.1:5060\"}\n"
	for _, tc := range []struct {
		yaml string
		want Datapath
		err  string
	}{
		{"", DatapathAuto, ""},
		{"media: {datapath: auto}\n", DatapathAuto, ""},
		{"media: {datapath: xdp}\n", DatapathXDP, ""},
		{"media: {datapath: tc}\n", DatapathTC, ""},
		{"media: {datapath: xdp-generic}\n", DatapathXDPGeneric, ""},
		{"media: {datapath: userspace}\n", DatapathUserSpace, ""},
		{"media: {datapath: dpdk}\n", "", "media.datapath"},
	} {
		c, err := Parse([]byte(base + tc.yaml))
		if tc.err != "" {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one naming %s", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if c.Media.Datapath != tc.want {
			t.Errorf("%q: datapath %q, want %q", tc.yaml, c.Media.Datapath, tc.want)
		}
	}
	if !DatapathXDP.Forced() || DatapathAuto.Forced() || DatapathUserSpace.Kernel() {
		t.Error("Forced/Kernel")
	}
}
