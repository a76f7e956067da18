package cdr

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// spool keeps records the database could not take, in order, on disk:
// numbered segment files of JSON lines, each synced after every append,
// so a record counted spooled survives a kill -9 or a power cut. A
// segment is deleted only once every record in it is in the database; a
// replay cut short is replayed again, and the database's ON CONFLICT DO
// NOTHING keeps that from duplicating anything.
type spool struct {
	dir  string
	max  int64
	size int64 // bytes in all segments

	segs    []int // segment numbers, oldest first
	cur     *os.File
	curN    int
	curSize int64
}

// segmentMax bounds one segment, so a replay reads a bounded file.
const segmentMax = 4 << 20

func openSpool(dir string, max int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cdr spool: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cdr spool: %w", err)
	}
	s := &spool{dir: dir, max: max}
	for _, e := range ents {
		n, ok := segNumber(e.Name())
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("cdr spool: %w", err)
		}
		s.segs = append(s.segs, n)
		s.size += info.Size()
	}
	slices.Sort(s.segs)
	return s, nil
}

func segNumber(name string) (int, bool) {
	base, ok := strings.CutSuffix(name, ".jsonl")
	if !ok || len(base) != 12 {
		return 0, false
	}
	n, err := strconv.Atoi(base)
	return n, err == nil
}

func (s *spool) path(n int) string { return filepath.Join(s.dir, fmt.Sprintf("%012d.jsonl", n)) }

func (s *spool) empty() bool { return len(s.segs) == 0 }

// append adds records at the spool's end and syncs them. It returns how
// many it took: it stops at the first that does not fit (ErrSpoolFull).
func (s *spool) append(recs []Record) (int, error) {
	var buf bytes.Buffer
	taken := 0
	var full error
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			continue
		}
		if s.size+int64(buf.Len()+len(line)+1) > s.max {
			full = ErrSpoolFull
			break
		}
		buf.Write(line)
		buf.WriteByte('\n')
		taken++
	}
	if buf.Len() == 0 {
		return 0, full
	}
	if s.cur == nil || s.curSize >= segmentMax {
		if err := s.newSegment(); err != nil {
			return 0, err
		}
	}
	n, err := s.cur.Write(buf.Bytes())
	s.curSize += int64(n)
	s.size += int64(n)
	if err == nil {
		err = s.cur.Sync()
	}
	if err != nil {
		// A torn tail is skipped at replay; the records are not counted.
		s.closeCur()
		return 0, fmt.Errorf("cdr spool write: %w", err)
	}
	return taken, full
}

// newSegment starts a segment after the last one: a segment found at
// start may end in a torn line, so nothing is appended to it.
func (s *spool) newSegment() error {
	s.closeCur()
	n := 1
	if len(s.segs) > 0 {
		n = s.segs[len(s.segs)-1] + 1
	}
	f, err := os.OpenFile(s.path(n), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cdr spool: %w", err)
	}
	syncDir(s.dir)
	s.segs = append(s.segs, n)
	s.cur, s.curN, s.curSize = f, n, 0
	return nil
}

func (s *spool) closeCur() {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
}

// oldest reads the oldest segment's records; torn or unreadable lines
// are skipped and counted in bad.
func (s *spool) oldest() (recs []Record, bad int, err error) {
	if s.empty() {
		return nil, 0, nil
	}
	f, err := os.Open(s.path(s.segs[0]))
	if err != nil {
		return nil, 0, fmt.Errorf("cdr spool: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), segmentMax)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.ID == "" {
			bad++
			continue
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		return recs, bad, fmt.Errorf("cdr spool read: %w", err)
	}
	return recs, bad, nil
}

// dropOldest deletes the oldest segment, once the database has it all.
func (s *spool) dropOldest() error {
	n := s.segs[0]
	if s.cur != nil && s.curN == n {
		s.closeCur()
	}
	p := s.path(n)
	info, err := os.Stat(p)
	if err == nil {
		s.size -= info.Size()
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("cdr spool: %w", err)
	}
	syncDir(s.dir)
	s.segs = s.segs[1:]
	if s.empty() {
		s.size = 0
	}
	return nil
}

func (s *spool) close() { s.closeCur() }
