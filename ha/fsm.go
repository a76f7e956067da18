package ha

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"sync"

	"github.com/hashicorp/raft"
)

// Record limits. A call record is a few KB; these bound what a corrupt or
// hostile entry can make a node allocate.
const (
	MaxKeyLen   = 1024
	MaxValueLen = 1 << 20
)

// Log entry format (Consul's pattern): the first byte is the command type,
// a dispatch table maps it to a handler. A type this build does not know
// stops the node (panic) unless it carries ignoreUnknownFlag: applying the
// rest of the log without it would make this node's state silently differ
// from its peers'.
//
//	cmdPut    key(uvarint len + bytes) value(uvarint len + bytes)
//	cmdDelete key(uvarint len + bytes)
//	cmdBatch  count(uvarint), then count entries, each a full command
//	          (type byte + body); batches do not nest.
type cmdType byte

const (
	cmdPut    cmdType = 1
	cmdDelete cmdType = 2
	cmdBatch  cmdType = 3

	// ignoreUnknownFlag marks a command older builds may skip (for
	// additions that do not change the replicated records).
	ignoreUnknownFlag cmdType = 0x80
)

// maxBatchOps bounds a batch's count field (a corrupt count must not make
// a node loop or allocate).
const maxBatchOps = 1 << 16

// fsm is the replicated store: key -> opaque value. Apply runs on raft's
// FSM goroutine; reads take the read lock.
type fsm struct {
	mu   sync.RWMutex
	data map[string][]byte
	// unknownIgnored counts skipped commands flagged ignorable.
	unknownIgnored uint64
}

func newFSM() *fsm { return &fsm{data: map[string][]byte{}} }

type applyFunc func(f *fsm, body []byte) ([]byte, error)

// dispatch is the command table. cmdBatch is handled by applyCmd itself
// (no nesting).
var dispatch = map[cmdType]applyFunc{
	cmdPut:    (*fsm).applyPut,
	cmdDelete: (*fsm).applyDelete,
}

// Apply implements raft.FSM. Deterministic: the result depends on the
// entry and the state only. A malformed entry of a known type changes
// nothing and returns an error (the same on every node); an unknown type
// panics.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(l.Data) == 0 {
		return fmt.Errorf("%w: empty entry at index %d", ErrCorrupt, l.Index)
	}
	t := cmdType(l.Data[0])
	if t == cmdBatch {
		return f.applyBatch(l.Data[1:], l.Index)
	}
	_, err := f.applyCmd(l.Data, l.Index)
	if err != nil {
		return err
	}
	return nil
}

// applyBatch checks the whole batch before changing anything, so a
// malformed batch is all-or-nothing.
func (f *fsm) applyBatch(body []byte, index uint64) error {
	n, k := binary.Uvarint(body)
	if k <= 0 || n > maxBatchOps {
		return fmt.Errorf("%w: batch count at index %d", ErrCorrupt, index)
	}
	body = body[k:]
	cmds := make([][]byte, 0, n)
	for i := uint64(0); i < n; i++ {
		l, err := cmdLen(body)
		if err != nil {
			return fmt.Errorf("%w: batch entry %d at index %d: %v", ErrCorrupt, i, index, err)
		}
		cmds = append(cmds, body[:l])
		body = body[l:]
	}
	if len(body) != 0 {
		return fmt.Errorf("%w: %d trailing bytes in batch at index %d", ErrCorrupt, len(body), index)
	}
	for _, c := range cmds {
		if _, err := f.applyCmd(c, index); err != nil {
			return err // cannot happen after cmdLen accepted it, but never silently
		}
	}
	return nil
}

func (f *fsm) applyCmd(c []byte, index uint64) ([]byte, error) {
	t := cmdType(c[0])
	h, ok := dispatch[t]
	if !ok {
		if t&ignoreUnknownFlag != 0 {
			f.unknownIgnored++
			return nil, nil
		}
		panic(fmt.Sprintf("ha: unknown command type %d in log entry %d: this build is older than the leader's; upgrade it", t, index))
	}
	return h(f, c[1:])
}

func (f *fsm) applyPut(body []byte) ([]byte, error) {
	key, rest, err := readBytes(body, MaxKeyLen)
	if err != nil {
		return nil, fmt.Errorf("%w: put key: %v", ErrCorrupt, err)
	}
	val, rest, err := readBytes(rest, MaxValueLen)
	if err != nil || len(rest) != 0 || len(key) == 0 {
		return nil, fmt.Errorf("%w: put value", ErrCorrupt)
	}
	f.data[string(key)] = append([]byte(nil), val...)
	return nil, nil
}

func (f *fsm) applyDelete(body []byte) ([]byte, error) {
	key, rest, err := readBytes(body, MaxKeyLen)
	if err != nil || len(rest) != 0 || len(key) == 0 {
		return nil, fmt.Errorf("%w: delete key", ErrCorrupt)
	}
	delete(f.data, string(key))
	return nil, nil
}

// cmdLen is the length of the command at the start of b, checking its
// framing (not its type: an unknown type is the dispatcher's to judge, and
// then only flagged-ignorable unknowns can be framed, as put-shaped).
func cmdLen(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errors.New("empty")
	}
	n := 1
	switch t := cmdType(b[0]); {
	case t == cmdDelete:
		k, rest, err := readBytes(b[1:], MaxKeyLen)
		if err != nil {
			return 0, err
		}
		if len(k) == 0 {
			return 0, errors.New("empty key")
		}
		n = len(b) - len(rest)
	case t == cmdPut || t&ignoreUnknownFlag != 0:
		k, rest, err := readBytes(b[1:], MaxKeyLen)
		if err != nil {
			return 0, err
		}
		if len(k) == 0 && t == cmdPut {
			return 0, errors.New("empty key")
		}
		_, rest, err = readBytes(rest, MaxValueLen)
		if err != nil {
			return 0, err
		}
		n = len(b) - len(rest)
	default:
		panic(fmt.Sprintf("ha: unknown command type %d in a batch: this build is older than the leader's; upgrade it", t))
	}
	return n, nil
}

// readBytes reads a uvarint length and that many bytes, at most max.
func readBytes(b []byte, max int) (v, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, errors.New("bad length")
	}
	if n > uint64(max) || n > uint64(len(b)-k) {
		return nil, nil, fmt.Errorf("length %d over limit or data", n)
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// encodeOp appends one put (val != nil) or delete command.
func encodeOp(b []byte, o *op) []byte {
	if o.del {
		b = append(b, byte(cmdDelete))
		return appendBytes(b, []byte(o.key))
	}
	b = append(b, byte(cmdPut))
	b = appendBytes(b, []byte(o.key))
	return appendBytes(b, o.val)
}

// encodeBatch is one log entry for ops: the plain command for one op, a
// cmdBatch for more.
func encodeBatch(ops []*op) []byte {
	size := 8
	for _, o := range ops {
		size += len(o.key) + len(o.val) + 12
	}
	b := make([]byte, 0, size)
	if len(ops) == 1 {
		return encodeOp(b, ops[0])
	}
	b = append(b, byte(cmdBatch))
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, o := range ops {
		b = encodeOp(b, o)
	}
	return b
}

func (f *fsm) get(key string) ([]byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.data[key]
	return v, ok
}

func (f *fsm) len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.data)
}

// clone copies the map (values are never mutated in place, so sharing
// them is safe).
func (f *fsm) clone() map[string][]byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.data)
}

// Snapshot implements raft.FSM: a map copy under the read lock (fast);
// Persist does the encoding and I/O.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{data: f.clone()}, nil
}

// Snapshot format: magic "ESBCHA", version byte, record count (uvarint),
// records (key, value as length-prefixed bytes), CRC-32 (IEEE, big endian)
// of everything before it.
const (
	snapMagic   = "ESBCHA"
	snapVersion = 1
)

type fsmSnapshot struct{ data map[string][]byte }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("ha: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

func writeSnapshot(w io.Writer, data map[string][]byte) error {
	crc := crc32.NewIEEE()
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var hdr []byte
	hdr = append(hdr, snapMagic...)
	hdr = append(hdr, snapVersion)
	hdr = binary.AppendUvarint(hdr, uint64(len(data)))
	if _, err := bw.Write(hdr); err != nil {
		return err
	}
	var rec []byte
	for k, v := range data {
		rec = appendBytes(rec[:0], []byte(k))
		rec = appendBytes(rec, v)
		if _, err := bw.Write(rec); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32()))
	return err
}

// Restore implements raft.FSM: replaces all state with the snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("ha: restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.data = data
	f.mu.Unlock()
	return nil
}

func readSnapshot(r io.Reader) (map[string][]byte, error) {
	crc := crc32.NewIEEE()
	br := bufio.NewReaderSize(r, 64<<10)
	tr := io.TeeReader(br, crc)
	hdr := make([]byte, len(snapMagic)+1)
	if _, err := io.ReadFull(tr, hdr); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if string(hdr[:len(snapMagic)]) != snapMagic {
		return nil, fmt.Errorf("%w: not an EdgeSBC HA snapshot", ErrCorrupt)
	}
	if v := hdr[len(snapMagic)]; v != snapVersion {
		return nil, fmt.Errorf("%w: snapshot version %d, this build reads %d", ErrCorrupt, v, snapVersion)
	}
	bt := byteReader{tr}
	n, err := binary.ReadUvarint(bt)
	if err != nil {
		return nil, fmt.Errorf("%w: count: %v", ErrCorrupt, err)
	}
	data := make(map[string][]byte, min(n, 1<<16))
	for i := uint64(0); i < n; i++ {
		k, err := readSnapBytes(tr, bt, MaxKeyLen)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d key: %v", ErrCorrupt, i, err)
		}
		v, err := readSnapBytes(tr, bt, MaxValueLen)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d value: %v", ErrCorrupt, i, err)
		}
		data[string(k)] = v
	}
	want := crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil {
		return nil, fmt.Errorf("%w: checksum: %v", ErrCorrupt, err)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, computed %08x", ErrCorrupt, got, want)
	}
	return data, nil
}

type byteReader struct{ io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var c [1]byte
	_, err := io.ReadFull(b.Reader, c[:])
	return c[0], err
}

func readSnapBytes(r io.Reader, br io.ByteReader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("length %d over limit %d", n, max)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}
