package ha

import (
	"fmt"
	"time"
)

// Writes are coalesced so that replication does not slow call setup:
// every Put/Delete goes on a queue; one batcher goroutine takes the first
// waiting op plus every other op already queued (up to maxBatchOps ops or
// maxBatchBytes) and submits them as ONE log entry (cmdBatch), without
// waiting for the previous entry to commit: up to maxInflight entries are
// in the pipeline at once (raft itself groups those into one AppendEntries
// and one WAL write). Under load, batches grow by themselves while the
// pipeline is full; idle, a single Put costs one entry and one round trip.
// Put waits for its entry to be committed and applied on the leader;
// PutAsync does not wait.
const (
	maxInflight   = 8
	maxOpsPerLog  = 512
	maxBatchBytes = 4 << 20
	applyTimeout  = 5 * time.Second
)

type op struct {
	key  string
	val  []byte
	del  bool
	done chan error // buffered 1
}

// Put replicates key=val. Leader only (ErrNotLeader otherwise). It returns
// once the write is committed by a quorum and applied locally. val is
// copied.
func (n *Node) Put(key string, val []byte) error { return <-n.PutAsync(key, val) }

// PutAsync queues key=val and returns at once; the channel yields the
// outcome (nil once committed and applied). For the call path: a call
// setup need not wait for replication.
func (n *Node) PutAsync(key string, val []byte) <-chan error {
	if err := checkRecord(key, val); err != nil {
		return errCh(err)
	}
	return n.submit(&op{key: key, val: append([]byte(nil), val...)})
}

// Delete removes key everywhere. Leader only. Deleting a missing key is
// not an error.
func (n *Node) Delete(key string) error { return <-n.DeleteAsync(key) }

// DeleteAsync queues a delete and returns at once.
func (n *Node) DeleteAsync(key string) <-chan error {
	if err := checkRecord(key, nil); err != nil {
		return errCh(err)
	}
	return n.submit(&op{key: key, del: true})
}

func checkRecord(key string, val []byte) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key length %d (1..%d)", ErrBadRecord, len(key), MaxKeyLen)
	}
	if len(val) > MaxValueLen {
		return fmt.Errorf("%w: value of %q is %d bytes (max %d)", ErrBadRecord, key, len(val), MaxValueLen)
	}
	return nil
}

func errCh(err error) <-chan error {
	c := make(chan error, 1)
	c <- err
	return c
}

func (n *Node) submit(o *op) <-chan error {
	// The read lock orders submits before Close's failQueued: an op is
	// either refused here or answered by the batcher or failQueued.
	n.subMu.RLock()
	defer n.subMu.RUnlock()
	if n.closed.Load() {
		return errCh(ErrClosed)
	}
	if !n.IsLeader() {
		return errCh(ErrNotLeader)
	}
	o.done = make(chan error, 1)
	n.q <- o
	return o.done
}

// batcher: see the comment at the top of the file.
func (n *Node) batcher() {
	defer n.wg.Done()
	for {
		// Take a pipeline slot first: while all slots are busy, ops pile
		// up in the queue and the next batch takes them all.
		select {
		case n.slots <- struct{}{}:
		case <-n.closing:
			return
		}
		var first *op
		select {
		case first = <-n.q:
		case <-n.closing:
			return
		}
		batch := []*op{first}
		size := len(first.key) + len(first.val)
	drain:
		for len(batch) < maxOpsPerLog && size < maxBatchBytes {
			select {
			case o := <-n.q:
				batch = append(batch, o)
				size += len(o.key) + len(o.val)
			default:
				break drain
			}
		}
		n.metrics.batchOps.Observe(float64(len(batch)))
		start := time.Now()
		f := n.raft.Apply(encodeBatch(batch), applyTimeout)
		go func() {
			err := f.Error()
			if err == nil {
				if e, ok := f.Response().(error); ok {
					err = e
				}
			}
			err = mapErr(err)
			n.metrics.applySeconds.Observe(time.Since(start).Seconds())
			for _, o := range batch {
				o.done <- err
			}
			<-n.slots
		}()
	}
}

// failQueued answers every op still queued after the batcher stopped.
func (n *Node) failQueued() {
	for {
		select {
		case o := <-n.q:
			o.done <- ErrClosed
		default:
			return
		}
	}
}

// PutUnbatched replicates key=val as its own log entry, bypassing the
// batcher, and waits for it: the baseline the batching is measured
// against (benchmarks). Use Put.
func (n *Node) PutUnbatched(key string, val []byte) error {
	if err := checkRecord(key, val); err != nil {
		return err
	}
	if !n.IsLeader() {
		return ErrNotLeader
	}
	f := n.raft.Apply(encodeBatch([]*op{{key: key, val: val}}), applyTimeout)
	if err := f.Error(); err != nil {
		return mapErr(err)
	}
	if e, ok := f.Response().(error); ok {
		return e
	}
	return nil
}
