package config

import "fmt"

// DefaultMTU is RFC 3261 18.1.1's size limit for a request over UDP when
// the path MTU is not known: a request larger than 1300 bytes goes over a
// congestion-controlled transport (TCP) where the peer takes one.
const DefaultMTU = 1300

// Bounds of realms[].mtu: below 576 bytes (the least datagram every IPv4
// host reassembles, RFC 791) most INVITEs would switch; above 65507 (the
// largest UDP payload over IPv4) nothing could be sent over UDP anyway.
const (
	minMTU = 576
	maxMTU = 65507
)

func (r *Realm) applyMTUDefault() {
	if r.MTU == 0 {
		r.MTU = DefaultMTU
	}
}

// validateMTUs checks every realm's mtu.
func (c *Config) validateMTUs() error {
	for i, r := range c.Realms {
		if r.MTU < minMTU || r.MTU > maxMTU {
			return keyErr(fmt.Sprintf("realms[%d].mtu", i), "%d must be between %d and %d bytes", r.MTU, minMTU, maxMTU)
		}
	}
	return nil
}
