package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/edgesbc/edgesbc/config"
)

func TestHEP(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.HEP.Enabled() || c.HEP != (config.HEP{}) {
		t.Errorf("HEP is on by default: %+v", c.HEP)
	}
	c, err = config.Parse([]byte(baseYAML + "hep: {address: \"192.0.2.50:9060\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.HEP{Address: "192.0.2.50:9060", Transport: "udp", CaptureID: 2001, QueueSize: 4096}); c.HEP != want {
		t.Errorf("defaults %+v, want %+v", c.HEP, want)
	}
	c, err = config.Parse([]byte(baseYAML + "hep: {address: \"homer.example:9061\", transport: tcp, capture_id: 7, password: pw, queue_size: 10}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.HEP{Address: "homer.example:9061", Transport: "tcp", CaptureID: 7, Password: "pw", QueueSize: 10}); c.HEP != want {
		t.Errorf("set %+v, want %+v", c.HEP, want)
	}
	for y, key := range map[string]string{
		"hep: {address: \"192.0.2.50\"}\n":                              "hep.address",
		"hep: {address: \":9060\"}\n":                                   "hep.address",
		"hep: {address: \"192.0.2.50:0\"}\n":                            "hep.address",
		"hep: {address: \"192.0.2.50:99999\"}\n":                        "hep.address",
		"hep: {capture_id: 5}\n":                                        "hep.address",
		"hep: {address: \"192.0.2.50:9060\", transport: sctp}\n":        "hep.transport",
		"hep: {address: \"192.0.2.50:9060\", queue_size: -1}\n":         "hep.queue_size",
		"hep: {address: \"192.0.2.50:9060\", password: \"a\\nb\"}\n":    "hep.password",
		"hep: {address: \"192.0.2.50:9060\", capture_id: -1}\n":         "hep.capture_id",
		"hep: {address: \"192.0.2.50:9060\", capture_id: 4294967296}\n": "hep.capture_id",
		"hep: {address: \"192.0.2.50:9060\", colector: x}\n":            "colector",
	} {
		_, err := config.Parse([]byte(baseYAML + y))
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: %v, want an error naming %s", y, err, key)
		}
	}
}
