package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/edgesbc/edgesbc/mediarelay"
)

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

// Policy converts to mediarelay's form; call after Validate.
func (s SRTP) Policy() mediarelay.SRTPPolicy {
	m, _ := mediarelay.ParseSRTPMode(s.Mode)
	return mediarelay.SRTPPolicy{Mode: m, Suites: s.Suites}
}

func (s SRTP) validate(key string) error {
	if _, err := mediarelay.ParseSRTPMode(s.Mode); err != nil {
		return keyErr(key+".mode", "%v", err)
	}
	seen := map[string]bool{}
	for j, name := range s.Suites {
		k := fmt.Sprintf("%s.suites[%d]", key, j)
		if !mediarelay.SuiteSupported(name) {
			return keyErr(k, "%q is not a supported crypto suite (AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AES_256_CM_HMAC_SHA1_80, AES_256_CM_HMAC_SHA1_32, AEAD_AES_128_GCM, AEAD_AES_256_GCM)", name)
		}
		if seen[name] {
			return keyErr(k, "%q is listed twice", name)
		}
		seen[name] = true
	}
	return nil
}
