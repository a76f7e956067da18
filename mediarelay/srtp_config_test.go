package mediarelay

import (
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/edgesbc/edgesbc/config"
)

// config names SRTP modes and suites as strings so that it links no SRTP
// code; this package must serve every name config accepts, and config
// must accept every suite this package implements.
func TestSupportsEveryConfigSRTPName(t *testing.T) {
	for _, m := range append([]string{""}, config.SRTPModes...) {
		if _, err := ParseSRTPMode(m); err != nil {
			t.Errorf("config accepts srtp mode %q: %v", m, err)
		}
	}
	for _, s := range config.SRTPSuites {
		if !SuiteSupported(s) {
			t.Errorf("config accepts crypto suite %q, mediarelay does not support it", s)
		}
	}
	var ours []string
	for s := range suiteProfiles {
		ours = append(ours, s)
	}
	sort.Strings(ours)
	theirs := slices.Sorted(slices.Values(config.SRTPSuites))
	if !reflect.DeepEqual(ours, theirs) {
		t.Errorf("mediarelay suites %v, config suites %v", ours, theirs)
	}
	for _, s := range DefaultSuites {
		if !slices.Contains(config.SRTPSuites, s) {
			t.Errorf("default suite %q is not a config suite", s)
		}
	}
}

func TestNewSRTPPolicy(t *testing.T) {
	good := []struct {
		mode   string
		suites []string
		want   SRTPPolicy
	}{
		{"", nil, SRTPPolicy{Mode: SRTPOff}},
		{"off", nil, SRTPPolicy{Mode: SRTPOff}},
		{"optional", nil, SRTPPolicy{Mode: SRTPOptional}},
		{"required", nil, SRTPPolicy{Mode: SRTPRequired}},
		{"required", []string{"AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80"},
			SRTPPolicy{Mode: SRTPRequired, Suites: []string{"AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80"}}},
	}
	for _, g := range good {
		got, err := NewSRTPPolicy(g.mode, g.suites)
		if err != nil || !reflect.DeepEqual(got, g.want) {
			t.Fatalf("NewSRTPPolicy(%q, %v) = %+v, %v; want %+v", g.mode, g.suites, got, err, g.want)
		}
	}
	if _, err := NewSRTPPolicy("sometimes", nil); err == nil {
		t.Fatal("mode sometimes accepted")
	}
	if _, err := NewSRTPPolicy("optional", []string{"F8_128_HMAC_SHA1_80"}); err == nil {
		t.Fatal("suite F8_128_HMAC_SHA1_80 accepted")
	}
}
