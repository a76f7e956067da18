package policy

import "bytes"

// Scanners recognises SIP scanners by their User-Agent, on the raw
// datagram before parsing: a bounded linear scan, no allocation.
type Scanners struct {
	needles [][]byte // lower case
}

// NewScanners matches User-Agent values containing any of subs
// (case-insensitive).
func NewScanners(subs []string) *Scanners {
	s := &Scanners{}
	for _, x := range subs {
		s.needles = append(s.needles, bytes.ToLower([]byte(x)))
	}
	return s
}

var uaName = []byte("user-agent")

// Match reports whether msg's header section has a User-Agent header
// that names a scanner. It looks at header lines only (up to the first
// empty line).
func (s *Scanners) Match(msg []byte) bool {
	if s == nil || len(s.needles) == 0 {
		return false
	}
	for pos := 0; pos < len(msg); {
		end := bytes.IndexByte(msg[pos:], '\n')
		if end < 0 {
			end = len(msg)
		} else {
			end += pos
		}
		line := msg[pos:end]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 && pos > 0 {
			return false // end of headers
		}
		if len(line) > len(uaName) && line[0]|0x20 == 'u' && bytes.EqualFold(line[:len(uaName)], uaName) {
			rest := bytes.TrimLeft(line[len(uaName):], " \t")
			if len(rest) > 0 && rest[0] == ':' && s.matchValue(rest[1:]) {
				return true
			}
		}
		pos = end + 1
	}
	return false
}

func (s *Scanners) matchValue(v []byte) bool {
	for _, n := range s.needles {
		if len(n) == 0 || len(n) > len(v) {
			continue
		}
		for i := 0; i+len(n) <= len(v); i++ {
			if v[i]|0x20 == n[0]|0x20 && bytes.EqualFold(v[i:i+len(n)], n) {
				return true
			}
		}
	}
	return false
}
