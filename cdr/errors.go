package cdr

import "errors"

// ErrSpoolFull: the spool has no room for a record; it is dropped (and
// counted, and alarmed).
var ErrSpoolFull = errors.New("cdr spool full")
