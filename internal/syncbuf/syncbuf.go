// Package syncbuf is a bytes.Buffer that one goroutine may write (a
// process's stdout or stderr, a logger) while a test reads it: the tests'
// one locked buffer.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is safe for concurrent Write, Bytes and String.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Bytes is a copy of what was written so far.
func (s *Buffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
