// Package configs holds the shipped configurations; the default one is
// embedded in sbcd so it runs with no file at all.
package configs

import _ "embed"

// Default is a loopback-only config: sbcd runs with it when given no file.
//
//go:embed default.yaml
var Default []byte
