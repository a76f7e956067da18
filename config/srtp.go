package config

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SRTPModes are the values of srtp.mode ("" reads as off).
var SRTPModes = []string{"off", "optional", "required"}

// SRTPSuites are the SDES crypto suites (RFC 4568, 6188, 7714) the config
// accepts. config names them as strings so that it links no SRTP library;
// mediarelay maps each to its profile, and its tests check that it supports
// every name listed here.
var SRTPSuites = []string{
	"AES_CM_128_HMAC_SHA1_80",
	"AES_CM_128_HMAC_SHA1_32",
	"AES_256_CM_HMAC_SHA1_80",
	"AES_256_CM_HMAC_SHA1_32",
	"AEAD_AES_128_GCM",
	"AEAD_AES_256_GCM",
}

// SRTP is a realm's media security (realms[].media.srtp), either a mode
// alone or a mode with SDES crypto suites in preference order:
//
//	srtp: optional
//	srtp: {mode: required, suites: [AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM]}
//
// off (the default): plain RTP; an RTP/SAVP-only offer is refused with 488.
// optional: SRTP when the peer offers it; offers into the realm are
// best-effort (RTP/AVP with a=crypto). required: SRTP only (RTP/SAVP).
type SRTP struct {
	Mode   string   `yaml:"mode"`
	Suites []string `yaml:"suites"`
}

// UnmarshalYAML takes the scalar form or the mapping; unknown keys in the
// mapping are errors, as everywhere else in the config.
func (s *SRTP) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = SRTP{Mode: n.Value}
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; k != "mode" && k != "suites" {
				return fmt.Errorf("line %d: field %s not found in srtp (mode, suites)", n.Content[i].Line, k)
			}
		}
		type plain SRTP
		var p plain
		if err := n.Decode(&p); err != nil {
			return err
		}
		*s = SRTP(p)
		return nil
	}
	return fmt.Errorf("line %d: srtp must be off, optional, required or {mode, suites}", n.Line)
}

func (s SRTP) validate(key string) error {
	if s.Mode != "" && !slices.Contains(SRTPModes, s.Mode) {
		return keyErr(key+".mode", "%q must be off, optional or required", s.Mode)
	}
	seen := map[string]bool{}
	for j, name := range s.Suites {
		k := fmt.Sprintf("%s.suites[%d]", key, j)
		if !slices.Contains(SRTPSuites, name) {
			return keyErr(k, "%q is not a supported crypto suite (%s)", name, strings.Join(SRTPSuites, ", "))
		}
		if seen[name] {
			return keyErr(k, "%q is listed twice", name)
		}
		seen[name] = true
	}
	return nil
}
