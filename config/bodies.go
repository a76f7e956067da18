package config

import (
	"fmt"
	"mime"
	"strings"
)

// Bodies is what a realm accepts and sends in message bodies besides SDP.
//
// ISUP parts (application/isup in a multipart/mixed body, SIP-I and SIP-T)
// cross only between two realms that both say pass; drop removes them (the
// SDP goes on alone); refuse answers an INVITE carrying one from this
// realm with 415. Allow lists further content types an INVITE from this
// realm may carry (passed as they are); any other type is refused with
// 415. SDP is always accepted, and always rewritten.
type Bodies struct {
	ISUP  string   `yaml:"isup"`  // pass, drop (default) or refuse
	Allow []string `yaml:"allow"` // media types, e.g. application/vnd.example+xml
}

// Body ISUP policies.
const (
	BodyPass   = "pass"
	BodyDrop   = "drop"
	BodyRefuse = "refuse"
)

// ISUPPolicy is the ISUP policy with its default.
func (b Bodies) ISUPPolicy() string {
	if b.ISUP == "" {
		return BodyDrop
	}
	return b.ISUP
}

func (b Bodies) validate(key string) error {
	switch b.ISUP {
	case "", BodyPass, BodyDrop, BodyRefuse:
	default:
		return keyErr(key+".isup", "%q must be pass, drop or refuse", b.ISUP)
	}
	if len(b.Allow) > 32 {
		return keyErr(key+".allow", "%d types, at most 32", len(b.Allow))
	}
	for i, t := range b.Allow {
		mt, params, err := mime.ParseMediaType(t)
		k := fmt.Sprintf("%s.allow[%d]", key, i)
		switch {
		case err != nil || len(params) > 0 || !strings.Contains(mt, "/"):
			return keyErr(k, "%q is not a media type (type/subtype, no parameters)", t)
		case strings.HasPrefix(mt, "multipart/") || mt == "application/sdp" || mt == "application/isup" || mt == "message/sipfrag":
			return keyErr(k, "%q is handled by the SBC itself and cannot be allowed as is", t)
		}
	}
	return nil
}

// validateBodies checks every realm's bodies block.
func (c *Config) validateBodies() error {
	for i, r := range c.Realms {
		if err := r.Bodies.validate(fmt.Sprintf("realms[%d].bodies", i)); err != nil {
			return err
		}
	}
	return nil
}
