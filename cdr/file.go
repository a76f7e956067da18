package cdr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

// fileSink appends one JSON object per line. A record is counted written
// once it is in the file as the fsync policy says: after the batch's
// fsync (batch, always) or its write(2) (never: a process kill loses
// nothing, a power cut may).
type fileSink struct {
	cfg config.CDRFile
	m   *metrics
	log *slog.Logger

	f        *os.File
	size     int64
	opened   time.Time
	unsynced int // written, not yet synced (fsync: batch)
	buf      bytes.Buffer
}

func openFileSink(cfg config.CDRFile, m *metrics, log *slog.Logger) (*fileSink, error) {
	s := &fileSink{cfg: cfg, m: m, log: log}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *fileSink) name() string { return "file" }

func (s *fileSink) open() error {
	if err := os.MkdirAll(filepath.Dir(s.cfg.Path), 0o750); err != nil {
		return fmt.Errorf("cdr file: %w", err)
	}
	f, err := os.OpenFile(s.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("cdr file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("cdr file: %w", err)
	}
	s.f, s.size, s.opened = f, st.Size(), time.Now()
	if st.Size() == 0 {
		syncDir(filepath.Dir(s.cfg.Path)) // a new file's name survives a power cut too
	}
	return nil
}

func (s *fileSink) write(recs []Record) {
	if s.f == nil {
		if err := s.open(); err != nil {
			s.fail(len(recs), err)
			return
		}
	}
	s.buf.Reset()
	pending := 0
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil { // cannot happen for these types; counted if it does
			s.m.dropped.WithLabelValues("file", "encode").Inc()
			continue
		}
		line = append(line, '\n')
		if s.cfg.RotateSize > 0 && s.size+int64(s.buf.Len()+len(line)) > s.cfg.RotateSize && s.size+int64(s.buf.Len()) > 0 {
			if !s.flush(pending) {
				pending = 0
				s.buf.Reset()
				continue
			}
			pending = 0
			s.rotate()
			if s.f == nil {
				s.fail(1, fmt.Errorf("no file after rotation"))
				continue
			}
		}
		s.buf.Write(line)
		pending++
	}
	s.flush(pending)
}

// flush writes the buffered lines (n records) and syncs them as the
// policy says; false when the write failed (the records are lost).
func (s *fileSink) flush(n int) bool {
	if s.buf.Len() == 0 {
		return true
	}
	w, err := s.f.Write(s.buf.Bytes())
	s.size += int64(w)
	s.buf.Reset()
	if err != nil {
		s.fail(n, err)
		return false
	}
	switch s.cfg.Fsync {
	case "always":
		if err := s.f.Sync(); err != nil {
			s.fail(n, err)
			return false
		}
		s.m.written.WithLabelValues("file").Add(float64(n))
	case "never":
		s.m.written.WithLabelValues("file").Add(float64(n))
	default:
		s.unsynced += n
	}
	return true
}

// fail counts n records lost to err and reopens the file next time.
func (s *fileSink) fail(n int, err error) {
	s.m.errors.WithLabelValues("file").Inc()
	s.m.dropped.WithLabelValues("file", "write_error").Add(float64(n))
	s.log.Error("cdr file write failed: records lost", "path", s.cfg.Path, "records", n, "error", err, "alarm", "cdr_loss")
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// sync makes the unsynced records durable and counts them.
func (s *fileSink) sync() {
	if s.unsynced == 0 || s.f == nil {
		return
	}
	n := s.unsynced
	s.unsynced = 0
	if err := s.f.Sync(); err != nil {
		s.fail(n, err)
		return
	}
	s.m.written.WithLabelValues("file").Add(float64(n))
}

func (s *fileSink) tick(now time.Time) {
	s.sync()
	if s.f != nil && s.cfg.RotateInterval > 0 && s.size > 0 && now.Sub(s.opened) >= s.cfg.RotateInterval.Std() {
		s.rotate()
	}
}

// rotate closes the file as PATH-STAMP.EXT (synced first) and opens a
// new one, then deletes the oldest rotated files past keep.
func (s *fileSink) rotate() {
	s.sync()
	if err := s.f.Close(); err != nil {
		s.m.errors.WithLabelValues("file").Inc()
	}
	s.f = nil
	dst := rotatedName(s.cfg.Path, time.Now())
	for i := 1; fileExists(dst); i++ {
		dst = rotatedName(s.cfg.Path, time.Now()) + fmt.Sprintf(".%d", i)
	}
	if err := os.Rename(s.cfg.Path, dst); err != nil {
		s.m.errors.WithLabelValues("file").Inc()
		s.log.Error("cdr file rotation failed", "path", s.cfg.Path, "error", err)
	}
	if err := s.open(); err != nil {
		s.m.errors.WithLabelValues("file").Inc()
		s.log.Error("cdr file reopen failed", "path", s.cfg.Path, "error", err)
	}
	syncDir(filepath.Dir(s.cfg.Path))
	s.prune()
}

// rotatedName is cdr.jsonl -> cdr-20261201T101112.123Z.jsonl: names that
// sort by time.
func rotatedName(path string, t time.Time) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + t.UTC().Format("20060102T150405.000Z") + ext
}

// Rotated lists the rotated files of the sink writing path, oldest first.
func Rotated(path string) []string {
	ext := filepath.Ext(path)
	m, _ := filepath.Glob(strings.TrimSuffix(path, ext) + "-*T*Z" + ext + "*")
	slices.Sort(m)
	return m
}

func (s *fileSink) prune() {
	if s.cfg.Keep <= 0 {
		return
	}
	old := Rotated(s.cfg.Path)
	for len(old) > s.cfg.Keep {
		if err := os.Remove(old[0]); err != nil {
			s.m.errors.WithLabelValues("file").Inc()
		}
		old = old[1:]
	}
}

func (s *fileSink) close() {
	if s.f == nil {
		return
	}
	s.sync()
	if err := s.f.Close(); err != nil {
		s.m.errors.WithLabelValues("file").Inc()
	}
	s.f = nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// syncDir makes a rename or a new file in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
