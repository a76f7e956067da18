package config

import "path/filepath"

// state_dir: calls persisted on this node alone, so that sbcd restarted
// (or killed and started again) finds its established calls and takes
// them up where it left them. It is shorthand for an ha section without
// peers:
//
//	state_dir: /var/lib/edgesbc
//
// is the same as
//
//	ha: {node_id: local, data_dir: /var/lib/edgesbc}
//
// (a one-voter Raft log on local disk, no VIPs). With an ha section use
// ha.data_dir instead.

// validateStateDir checks state_dir.
func (c *Config) validateStateDir() error {
	if c.StateDir == "" {
		return nil
	}
	if c.HA != nil {
		return keyErr("state_dir", "set ha.data_dir instead when there is an ha section")
	}
	if !filepath.IsAbs(c.StateDir) {
		return keyErr("state_dir", "%q must be an absolute path", c.StateDir)
	}
	return nil
}

// Persistence is the ha section the node runs with: the configured one,
// or a single local voter for state_dir; nil when calls are not kept.
func (c *Config) Persistence() *HA {
	if c.HA != nil {
		return c.HA
	}
	if c.StateDir != "" {
		return &HA{NodeID: "local", DataDir: c.StateDir}
	}
	return nil
}
