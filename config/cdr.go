package config

import (
	"path/filepath"
	"regexp"
	"time"
)

// Call detail records (package cdr): one record per call attempt, written
// off the call path to a JSON-lines file (the default sink) and, when
// configured, to PostgreSQL.
//
//	cdr:
//	  queue: 10000                  # records waiting per sink; past it they are dropped and counted
//	  node: sbc-a                   # node name in every record; ha.node_id, else the host name
//	  file:                         # JSON lines (the default sink when no postgres is given)
//	    path: /var/log/edgesbc/cdr.jsonl
//	    rotate_size: 104857600      # bytes; 0: never by size
//	    rotate_interval: 24h        # 0: never by age
//	    keep: 0                     # rotated files kept (oldest deleted first); 0: all
//	    fsync: batch                # batch | always | never
//	    fsync_interval: 1s          # batch: how often (a record counts as written once synced)
//	  postgres:
//	    dsn: "postgres://cdr@db.example/edgesbc"
//	    table: cdr
//	    batch_size: 200
//	    batch_interval: 200ms
//	    connect_timeout: 5s
//	    spool_dir: /var/lib/edgesbc/cdr-spool
//	    spool_max_bytes: 268435456

// CDR is the cdr section; nil when absent (no records written).
type CDR struct {
	Queue    int          `yaml:"queue"`
	Node     string       `yaml:"node"`
	File     *CDRFile     `yaml:"file"`
	Postgres *CDRPostgres `yaml:"postgres"`
}

// CDRFile is the JSON-lines sink.
type CDRFile struct {
	Path           string   `yaml:"path"`
	RotateSize     int64    `yaml:"rotate_size"`
	RotateInterval Duration `yaml:"rotate_interval"`
	Keep           int      `yaml:"keep"`
	// Fsync: "batch" syncs every FsyncInterval, "always" after each
	// write, "never" leaves it to the kernel (a kill -9 loses nothing
	// written, a power cut may).
	Fsync         string   `yaml:"fsync"`
	FsyncInterval Duration `yaml:"fsync_interval"`
	// rotateSizeSet: rotate_size was given (0 then means never).
	rotateSizeSet bool
}

// CDRPostgres is the PostgreSQL sink.
type CDRPostgres struct {
	DSN            string   `yaml:"dsn"`
	Table          string   `yaml:"table"`
	BatchSize      int      `yaml:"batch_size"`
	BatchInterval  Duration `yaml:"batch_interval"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// SpoolDir keeps the records the database did not take, in order,
	// until it is back; SpoolMaxBytes bounds it.
	SpoolDir      string `yaml:"spool_dir"`
	SpoolMaxBytes int64  `yaml:"spool_max_bytes"`
}

// Default CDR values.
const (
	DefaultCDRPath       = "/var/log/edgesbc/cdr.jsonl"
	DefaultCDRSpoolDir   = "/var/lib/edgesbc/cdr-spool"
	defaultCDRQueue      = 10000
	defaultCDRRotateSize = 100 << 20
)

func (c *Config) cdrDefaults() {
	d := c.CDR
	if d == nil {
		return
	}
	if d.Queue == 0 {
		d.Queue = defaultCDRQueue
	}
	if d.Node == "" && c.HA != nil {
		d.Node = c.HA.NodeID
	}
	if d.File == nil && d.Postgres == nil {
		d.File = &CDRFile{}
	}
	if f := d.File; f != nil {
		if f.Path == "" {
			f.Path = DefaultCDRPath
		}
		if f.RotateSize == 0 && !f.rotateSizeSet {
			f.RotateSize = defaultCDRRotateSize
		}
		if f.Fsync == "" {
			f.Fsync = "batch"
		}
		if f.FsyncInterval == 0 {
			f.FsyncInterval = Duration(time.Second)
		}
	}
	if p := d.Postgres; p != nil {
		if p.Table == "" {
			p.Table = "cdr"
		}
		if p.BatchSize == 0 {
			p.BatchSize = 200
		}
		if p.BatchInterval == 0 {
			p.BatchInterval = Duration(200 * time.Millisecond)
		}
		if p.ConnectTimeout == 0 {
			p.ConnectTimeout = Duration(5 * time.Second)
		}
		if p.SpoolDir == "" {
			p.SpoolDir = DefaultCDRSpoolDir
			if c.StateDir != "" {
				p.SpoolDir = filepath.Join(c.StateDir, "cdr-spool")
			}
		}
		if p.SpoolMaxBytes == 0 {
			p.SpoolMaxBytes = 256 << 20
		}
	}
}

// UnmarshalYAML notes whether rotate_size was given, so that an explicit
// 0 means "never by size" rather than the default.
func (f *CDRFile) UnmarshalYAML(unmarshal func(any) error) error {
	type plain CDRFile
	var p plain
	if err := unmarshal(&p); err != nil {
		return err
	}
	var keys map[string]any
	_ = unmarshal(&keys)
	_, set := keys["rotate_size"]
	*f = CDRFile(p)
	f.rotateSizeSet = set
	return nil
}

var (
	sqlIdentRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	cdrNodeRe  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

func (c *Config) validateCDR() error {
	d := c.CDR
	if d == nil {
		return nil
	}
	if d.Queue < 1 || d.Queue > 1_000_000 {
		return keyErr("cdr.queue", "must be between 1 and 1000000 records")
	}
	if d.Node != "" && !cdrNodeRe.MatchString(d.Node) {
		return keyErr("cdr.node", "%q must be 1-64 letters, digits, '.', '_' or '-'", d.Node)
	}
	if f := d.File; f != nil {
		if !filepath.IsAbs(f.Path) {
			return keyErr("cdr.file.path", "%q must be an absolute path", f.Path)
		}
		if f.RotateSize < 0 || f.RotateSize > 0 && f.RotateSize < 4096 {
			return keyErr("cdr.file.rotate_size", "must be 0 (never) or at least 4096 bytes")
		}
		if r := f.RotateInterval.Std(); r < 0 || r > 0 && r < time.Second {
			return keyErr("cdr.file.rotate_interval", "must be 0 (never) or at least 1s")
		}
		if f.Keep < 0 || f.Keep > 100000 {
			return keyErr("cdr.file.keep", "must be between 0 (all) and 100000")
		}
		switch f.Fsync {
		case "batch", "always", "never":
		default:
			return keyErr("cdr.file.fsync", "%q must be batch, always or never", f.Fsync)
		}
		if i := f.FsyncInterval.Std(); i < time.Millisecond || i > time.Minute {
			return keyErr("cdr.file.fsync_interval", "must be between 1ms and 1m")
		}
	}
	if p := d.Postgres; p != nil {
		if p.DSN == "" {
			return keyErr("cdr.postgres.dsn", "required (a libpq URL or key=value string)")
		}
		if !sqlIdentRe.MatchString(p.Table) {
			return keyErr("cdr.postgres.table", "%q must be a lower-case SQL name (letters, digits, _)", p.Table)
		}
		if p.BatchSize < 1 || p.BatchSize > 10000 {
			return keyErr("cdr.postgres.batch_size", "must be between 1 and 10000")
		}
		if i := p.BatchInterval.Std(); i < time.Millisecond || i > time.Minute {
			return keyErr("cdr.postgres.batch_interval", "must be between 1ms and 1m")
		}
		if i := p.ConnectTimeout.Std(); i < 100*time.Millisecond || i > time.Minute {
			return keyErr("cdr.postgres.connect_timeout", "must be between 100ms and 1m")
		}
		if !filepath.IsAbs(p.SpoolDir) {
			return keyErr("cdr.postgres.spool_dir", "%q must be an absolute path", p.SpoolDir)
		}
		if p.SpoolMaxBytes < 1<<20 {
			return keyErr("cdr.postgres.spool_max_bytes", "must be at least 1048576 bytes")
		}
	}
	return nil
}
