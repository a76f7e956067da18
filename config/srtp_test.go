package config_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/config"
)

func withSRTP(t *testing.T, srtp string) string {
	return edit(t, "    listen: 198.51.100.1:5060\n", "    listen: 198.51.100.1:5060\n    media:\n      srtp: "+srtp+"\n")
}

func TestSRTPConfig(t *testing.T) {
	good := []struct {
		yaml string
		want config.SRTP
	}{
		{"off", config.SRTP{Mode: "off"}},
		{"optional", config.SRTP{Mode: "optional"}},
		{"required", config.SRTP{Mode: "required"}},
		{"{mode: required, suites: [AEAD_AES_128_GCM, AES_CM_128_HMAC_SHA1_80]}",
			config.SRTP{Mode: "required", Suites: []string{"AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80"}}},
		{"{suites: [AES_CM_128_HMAC_SHA1_32]}", config.SRTP{Suites: []string{"AES_CM_128_HMAC_SHA1_32"}}},
	}
	for _, g := range good {
		c, err := config.Parse([]byte(withSRTP(t, g.yaml)))
		if err != nil {
			t.Fatalf("srtp: %s: %v", g.yaml, err)
		}
		if got := c.Realms[1].Media.SRTP; !reflect.DeepEqual(got, g.want) {
			t.Fatalf("srtp: %s -> %+v, want %+v", g.yaml, got, g.want)
		}
	}
	c, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Realms[0].Media.SRTP; p.Mode != "" && p.Mode != "off" {
		t.Fatalf("default %+v, want off", p)
	}

	bad := []struct{ yaml, key, why string }{
		{"mandatory", "realms[1].media.srtp.mode", "off, optional or required"},
		{"{mode: sometimes}", "realms[1].media.srtp.mode", "off, optional or required"},
		{"{mode: optional, suites: [F8_128_HMAC_SHA1_80]}", "realms[1].media.srtp.suites[0]", "not a supported crypto suite"},
		{"{mode: optional, suites: [AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_80]}", "realms[1].media.srtp.suites[1]", "listed twice"},
		{"{mode: optional, suite: [AES_CM_128_HMAC_SHA1_80]}", "suite", "not found"},
		{"[optional]", "srtp", "must be off, optional, required"},
	}
	for _, b := range bad {
		_, err := config.Parse([]byte(withSRTP(t, b.yaml)))
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), b.key) || !strings.Contains(err.Error(), b.why) {
			t.Fatalf("srtp: %s: %v, want %s ... %s", b.yaml, err, b.key, b.why)
		}
	}
}
