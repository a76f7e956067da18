package config

// Datapath is media.datapath: which path forwards offloadable media.
//
//	auto       the kernel program (XDP, else tc) where it loads, else the
//	           user-space relay, with one log line saying why (the default)
//	xdp, tc    that kernel path or sbcd refuses to start (xdp-generic:
//	           XDP in the kernel's generic mode, for comparison)
//	userspace  the user-space relay only
type Datapath string

// The media.datapath values.
const (
	DatapathAuto       Datapath = "auto"
	DatapathXDP        Datapath = "xdp"
	DatapathTC         Datapath = "tc"
	DatapathXDPGeneric Datapath = "xdp-generic"
	DatapathUserSpace  Datapath = "userspace"
)

// Kernel reports whether sbcd should try the kernel path at all.
func (d Datapath) Kernel() bool { return d != DatapathUserSpace }

// Forced reports whether the kernel path is required (no fallback).
func (d Datapath) Forced() bool {
	return d == DatapathXDP || d == DatapathTC || d == DatapathXDPGeneric
}

func (m *Media) validateDatapath() error {
	switch m.Datapath {
	case "":
		m.Datapath = DatapathAuto
	case DatapathAuto, DatapathXDP, DatapathTC, DatapathXDPGeneric, DatapathUserSpace:
	default:
		return keyErr("media.datapath", "%q must be auto, xdp, xdp-generic, tc or userspace", m.Datapath)
	}
	return nil
}
