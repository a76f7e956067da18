package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

func TestCDRDefaults(t *testing.T) {
	c, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.CDR != nil {
		t.Fatalf("no cdr section, CDR = %+v", c.CDR)
	}
	c, err = config.Parse([]byte(baseYAML + "cdr: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.CDR
	if d.Queue != 10000 || d.Postgres != nil || d.File == nil {
		t.Fatalf("cdr defaults %+v", d)
	}
	f := d.File
	if f.Path != config.DefaultCDRPath || f.RotateSize != 100<<20 || f.Fsync != "batch" || f.FsyncInterval.Std() != time.Second || f.RotateInterval != 0 || f.Keep != 0 {
		t.Fatalf("cdr.file defaults %+v", f)
	}

	// postgres alone: no file sink; its spool under state_dir.
	c, err = config.Parse([]byte(baseYAML + "state_dir: /var/lib/x\ncdr: {postgres: {dsn: \"host=/tmp\"}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := c.CDR.Postgres
	if c.CDR.File != nil || p.Table != "cdr" || p.BatchSize != 200 || p.BatchInterval.Std() != 200*time.Millisecond ||
		p.SpoolDir != "/var/lib/x/cdr-spool" || p.SpoolMaxBytes != 256<<20 || p.ConnectTimeout.Std() != 5*time.Second {
		t.Fatalf("cdr.postgres defaults %+v, file %+v", p, c.CDR.File)
	}

	// An explicit rotate_size: 0 means never, not the default.
	c, err = config.Parse([]byte(baseYAML + "cdr: {file: {path: /tmp/c.jsonl, rotate_size: 0, fsync: always}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.CDR.File.RotateSize != 0 || c.CDR.File.Fsync != "always" {
		t.Fatalf("cdr.file %+v", c.CDR.File)
	}
	// The node name follows ha.node_id.
	c, err = config.Parse([]byte(baseYAML + "ha: {node_id: a, data_dir: /var/lib/a}\ncdr: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.CDR.Node != "a" {
		t.Fatalf("cdr.node %q, want ha.node_id", c.CDR.Node)
	}
}

func TestCDRInvalid(t *testing.T) {
	for key, y := range map[string]string{
		"cdr.queue":                    "cdr: {queue: -1}",
		"cdr.node":                     "cdr: {node: \"a b\"}",
		"cdr.file.path":                "cdr: {file: {path: cdr.jsonl}}",
		"cdr.file.rotate_size":         "cdr: {file: {rotate_size: 100}}",
		"cdr.file.rotate_interval":     "cdr: {file: {rotate_interval: 10ms}}",
		"cdr.file.keep":                "cdr: {file: {keep: -2}}",
		"cdr.file.fsync":               "cdr: {file: {fsync: sometimes}}",
		"cdr.file.fsync_interval":      "cdr: {file: {fsync_interval: 2m}}",
		"cdr.postgres.dsn":             "cdr: {postgres: {table: x}}",
		"cdr.postgres.table":           "cdr: {postgres: {dsn: x, table: \"cdr; drop\"}}",
		"cdr.postgres.batch_size":      "cdr: {postgres: {dsn: x, batch_size: 20000}}",
		"cdr.postgres.batch_interval":  "cdr: {postgres: {dsn: x, batch_interval: 2h}}",
		"cdr.postgres.connect_timeout": "cdr: {postgres: {dsn: x, connect_timeout: 1ms}}",
		"cdr.postgres.spool_dir":       "cdr: {postgres: {dsn: x, spool_dir: spool}}",
		"cdr.postgres.spool_max_bytes": "cdr: {postgres: {dsn: x, spool_max_bytes: 1000}}",
	} {
		_, err := config.Parse([]byte(baseYAML + y + "\n"))
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), key+":") {
			t.Errorf("%s: %v, want an error naming %s", y, err, key)
		}
	}
	// Unknown keys are refused inside the file section too.
	if _, err := config.Parse([]byte(baseYAML + "cdr: {file: {rotate: 5}}\n")); err == nil || !strings.Contains(err.Error(), "rotate") {
		t.Errorf("unknown key cdr.file.rotate: %v", err)
	}
}
