package config

import (
	"net"
	"strconv"
	"strings"
)

// HEP tracing: every SIP message sbcd sends and receives, and each call's
// media stats at its end, mirrored to a Homer collector (the hep
// package). Off unless address is set:
//
//	hep:
//	  address: 192.0.2.50:9060   # the collector, host:port
//	  transport: udp             # or tcp
//	  capture_id: 2001           # the capture agent ID Homer shows
//	  password: ""               # HEP auth key, sent with every packet when set
//	  queue_size: 4096           # packets waiting to be sent; past it they are dropped, counted
type HEP struct {
	Address   string `yaml:"address"`
	Transport string `yaml:"transport"`
	CaptureID int64  `yaml:"capture_id"` // 32 bits on the wire; wider here so a bad value is named, not a YAML type error
	Password  string `yaml:"password"`
	QueueSize int    `yaml:"queue_size"`
}

// Enabled says whether HEP tracing is on.
func (h HEP) Enabled() bool { return h.Address != "" }

func (c *Config) hepDefaults() {
	if !c.HEP.Enabled() {
		return
	}
	if c.HEP.Transport == "" {
		c.HEP.Transport = "udp"
	}
	if c.HEP.CaptureID == 0 {
		c.HEP.CaptureID = 2001 // Homer's customary first agent
	}
	if c.HEP.QueueSize == 0 {
		c.HEP.QueueSize = 4096
	}
}

func (c *Config) validateHEP() error {
	h := c.HEP
	if !h.Enabled() {
		if h.Transport != "" || h.CaptureID != 0 || h.Password != "" || h.QueueSize != 0 {
			return keyErr("hep.address", "the collector address is required when any other hep key is set")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(h.Address)
	if err != nil || host == "" {
		return keyErr("hep.address", "%q is not host:port", h.Address)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return keyErr("hep.address", "%q: port must be 1-65535", h.Address)
	}
	if h.CaptureID < 1 || h.CaptureID > 1<<32-1 {
		return keyErr("hep.capture_id", "%d must be between 1 and 4294967295", h.CaptureID)
	}
	if h.Transport != "udp" && h.Transport != "tcp" {
		return keyErr("hep.transport", "%q must be udp or tcp", h.Transport)
	}
	if len(h.Password) > 255 || strings.ContainsAny(h.Password, "\x00\r\n") {
		return keyErr("hep.password", "must be one line of at most 255 bytes")
	}
	if h.QueueSize < 1 || h.QueueSize > 1<<20 {
		return keyErr("hep.queue_size", "%d must be between 1 and 1048576", h.QueueSize)
	}
	return nil
}
