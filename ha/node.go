package ha

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// Peer is one Raft voter: its node ID and its address on the control
// network (ip:port).
type Peer struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// Config configures a node.
type Config struct {
	// NodeID names this node; it must be one of Peers' IDs.
	NodeID string
	// Bind is the ip:port Raft listens on. Its address must be the one
	// peers reach (no wildcard), or Peers' entry for NodeID must say it.
	Bind string
	// DataDir holds the WAL (log and stable store) and snapshots.
	DataDir string
	// Peers are all voters, this node and the witness included. Empty:
	// single-node mode, one voter on an in-memory transport (local
	// persistence across restarts, nothing replicated).
	Peers []Peer
	// Witness marks a node that votes but never stays leader: it hands
	// leadership to another voter as soon as it gets it.
	Witness bool

	// Raft timing; zero values take the defaults below. Failover takes
	// about HeartbeatTimeout to 2*HeartbeatTimeout plus an election.
	// A witness runs raft with a third of HeartbeatTimeout and four times
	// ElectionTimeout: it notices a dead leader first, is refused (the
	// surviving SBC node still knows the leader) and then waits, so the
	// SBC node's election, when it comes, gets the witness's vote and
	// the witness practically never wins (when it does, it hands over).
	HeartbeatTimeout time.Duration // default 200ms
	ElectionTimeout  time.Duration // default 200ms
	LeaderLease      time.Duration // default 150ms; <= HeartbeatTimeout
	// SnapshotThreshold and TrailingLogs: raft's (defaults 8192, 10240).
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// WALSegmentSize is raft-wal's segment file size (default 64 MiB).
	// Compaction frees whole segments only: entries in a live segment stay
	// readable, and a lagging follower is then caught up from them rather
	// than by a snapshot install.
	WALSegmentSize int

	Logger     *slog.Logger
	Registerer prometheus.Registerer

	// Tests only: raft's in-memory transport and stores.
	transport raft.Transport
	inmem     bool
}

const (
	defaultHeartbeat = 200 * time.Millisecond
	defaultElection  = 200 * time.Millisecond
	defaultLease     = 150 * time.Millisecond
)

func (c *Config) applyDefaults() {
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = defaultHeartbeat
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = defaultElection
	}
	if c.LeaderLease == 0 {
		c.LeaderLease = min(defaultLease, c.HeartbeatTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Node is one Raft voter with the replicated record store.
type Node struct {
	cfg       Config
	log       *slog.Logger
	raft      *raft.Raft
	fsm       *fsm
	wal       *wal.WAL // nil with in-memory stores
	meta      *metadb.BoltMetaDB
	logs      raft.LogStore
	dirLock   *os.File // flock on DataDir/LOCK: one node per data dir
	transport raft.Transport
	closer    func() error // transport close
	addr      raft.ServerAddress

	q       chan *op      // puts and deletes waiting for the batcher
	slots   chan struct{} // in-flight batch limit
	closing chan struct{}
	wg      sync.WaitGroup
	closed  atomic.Bool
	subMu   sync.RWMutex
	once    sync.Once

	lead     *leadership
	metrics  *metrics
	observer *raft.Observer
	obsCh    chan raft.Observation
	peerMu   sync.Mutex
	peerDown map[raft.ServerID]time.Time
}

// Open starts the node: opens (or creates) the durable stores, bootstraps
// the cluster configuration on first start (every voter bootstraps the
// same configuration), and starts Raft, the batcher and the leadership
// watcher.
func Open(cfg Config) (*Node, error) {
	cfg.applyDefaults()
	if cfg.NodeID == "" {
		return nil, errors.New("ha: NodeID is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("ha: DataDir is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("ha: data dir %s: %w", cfg.DataDir, err)
	}
	n := &Node{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "ha", "node", cfg.NodeID),
		fsm:      newFSM(),
		q:        make(chan *op, 4096),
		slots:    make(chan struct{}, maxInflight),
		closing:  make(chan struct{}),
		peerDown: map[raft.ServerID]time.Time{},
	}
	// One process per data dir: raft-wal's bolt meta DB would otherwise
	// wait forever for the other's lock.
	lock, err := os.OpenFile(filepath.Join(cfg.DataDir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ha: data dir lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("ha: data dir %s is in use by another process: %w", cfg.DataDir, err)
	}
	n.dirLock = lock
	ok := false
	defer func() {
		if !ok {
			n.closeStores()
		}
	}()
	if err := n.openTransport(); err != nil {
		return nil, err
	}
	hlog := newHCLogger(n.log)
	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if cfg.inmem {
		ms := raft.NewInmemStore()
		logs, stable, snaps = ms, ms, raft.NewInmemSnapshotStore()
	} else {
		wdir := filepath.Join(cfg.DataDir, "wal")
		if err := os.MkdirAll(wdir, 0o700); err != nil {
			return nil, fmt.Errorf("ha: WAL dir: %w", err)
		}
		// WAL.Close leaves the meta DB (bolt, flock'd) open: own it so
		// Close can release it and the node can be reopened in-process.
		n.meta = &metadb.BoltMetaDB{}
		seg := cfg.WALSegmentSize
		if seg <= 0 {
			seg = 64 << 20
		}
		w, err := wal.Open(wdir, wal.WithMetaStore(n.meta), wal.WithSegmentSize(seg))
		if err != nil {
			return nil, fmt.Errorf("ha: open WAL in %s: %w", cfg.DataDir, err)
		}
		n.wal = w
		logs, stable = w, w
		fs, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog.Named("snapshot"))
		if err != nil {
			return nil, fmt.Errorf("ha: snapshot store in %s: %w", cfg.DataDir, err)
		}
		snaps = fs
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLease
	if cfg.Witness {
		rc.HeartbeatTimeout = max(cfg.HeartbeatTimeout/3, 10*time.Millisecond)
		rc.ElectionTimeout = 4 * cfg.ElectionTimeout
		rc.LeaderLeaseTimeout = min(cfg.LeaderLease, rc.HeartbeatTimeout)
	}
	rc.CommitTimeout = 50 * time.Millisecond // how soon an idle follower learns the commit index
	rc.Logger = hlog
	rc.NoLegacyTelemetry = true
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	notify := make(chan bool, 16)
	rc.NotifyCh = notify
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("ha: raft config: %w", err)
	}

	n.logs = logs
	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return nil, fmt.Errorf("ha: read existing state: %w", err)
	}
	if !existing {
		conf := n.bootstrapConfiguration()
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, n.transport, conf); err != nil {
			return nil, fmt.Errorf("ha: bootstrap: %w", err)
		}
		n.log.Info("bootstrapped cluster", "voters", len(conf.Servers))
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, stable, snaps, n.transport)
	if err != nil {
		return nil, fmt.Errorf("ha: start raft: %w", err)
	}
	n.raft = r
	ok = true

	n.metrics = newMetrics(n, cfg.Registerer)
	n.obsCh = make(chan raft.Observation, 64)
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(n.observer)
	n.lead = newLeadership(n, notify)
	n.wg.Add(3)
	go n.lead.run()
	go n.batcher()
	go n.observe()
	n.log.Info("raft started", "bind", n.addr, "peers", len(cfg.Peers), "witness", cfg.Witness, "existing_state", existing)
	return n, nil
}

func (n *Node) openTransport() error {
	if n.cfg.transport != nil {
		n.addr, n.transport = n.cfg.transport.LocalAddr(), n.cfg.transport
		return nil
	}
	if len(n.cfg.Peers) == 0 {
		addr, t := raft.NewInmemTransport(raft.ServerAddress("local-" + n.cfg.NodeID))
		n.addr, n.transport, n.closer = addr, t, t.Close
		return nil
	}
	self := -1
	for i, p := range n.cfg.Peers {
		if p.ID == n.cfg.NodeID {
			self = i
		}
	}
	if self < 0 {
		return fmt.Errorf("ha: node %q is not among the peers", n.cfg.NodeID)
	}
	bind := n.cfg.Bind
	if bind == "" {
		bind = n.cfg.Peers[self].Addr
	}
	adv, err := net.ResolveTCPAddr("tcp", n.cfg.Peers[self].Addr)
	if err != nil {
		return fmt.Errorf("ha: peer address %q of %s: %w", n.cfg.Peers[self].Addr, n.cfg.NodeID, err)
	}
	t, err := raft.NewTCPTransportWithLogger(bind, adv, 3, 2*time.Second, newHCLogger(n.log).Named("transport"))
	if err != nil {
		return fmt.Errorf("ha: raft transport on %s: %w", bind, err)
	}
	n.addr, n.transport, n.closer = t.LocalAddr(), t, t.Close
	return nil
}

func (n *Node) bootstrapConfiguration() raft.Configuration {
	if len(n.cfg.Peers) == 0 {
		return raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(n.cfg.NodeID), Address: n.addr, Suffrage: raft.Voter}}}
	}
	var c raft.Configuration
	for _, p := range n.cfg.Peers {
		c.Servers = append(c.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter})
	}
	return c
}

func (n *Node) closeStores() {
	if n.closer != nil {
		_ = n.closer()
	}
	if n.wal != nil {
		_ = n.wal.Close()
	}
	if n.meta != nil {
		_ = n.meta.Close()
	}
	if n.dirLock != nil {
		_ = n.dirLock.Close() // releases the flock
	}
}

// Get returns the local copy of a record (on the standby too: it applies
// every committed entry).
func (n *Node) Get(key string) ([]byte, bool) { return n.fsm.get(key) }

// Len is the number of records in the local store.
func (n *Node) Len() int { return n.fsm.len() }

// Range calls f for every record of the local store, in no order, until f
// returns false. It iterates over a copy: f may call Put or Delete. The
// value must not be modified.
func (n *Node) Range(f func(key string, val []byte) bool) {
	for k, v := range n.fsm.clone() {
		if !f(k, v) {
			return
		}
	}
}

// IsLeader reports effective leadership: Raft leader with the lease
// check passing (never true on a witness).
func (n *Node) IsLeader() bool { return n.lead.effective.Load() }

// Leadership delivers every change of effective leadership, true on gain
// and false on loss (Raft stepping down or the lease check failing). One
// consumer only. The channel is buffered; if the consumer falls behind
// the oldest values are dropped, never the latest: IsLeader is the
// current truth.
func (n *Node) Leadership() <-chan bool { return n.lead.out }

// Barrier waits until every entry committed before the call has been
// applied to the local store (leader only). Leadership already does this
// before it reports a gain.
func (n *Node) Barrier(timeout time.Duration) error {
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		return mapErr(err)
	}
	return nil
}

// Snapshot takes a snapshot of the store now and compacts the log down to
// TrailingLogs entries (raft otherwise does it every couple of minutes
// once SnapshotThreshold entries have accumulated).
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("ha: snapshot: %w", err)
	}
	return nil
}

// Close stops the batcher (failing queued writes with ErrClosed), shuts
// Raft down and closes the stores. A leader does not hand over here: the
// others notice after the heartbeat timeout. For a graceful stop call
// StepDown first (the other node takes over in milliseconds).
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		n.subMu.Lock()
		n.closed.Store(true)
		n.subMu.Unlock()
		close(n.closing)
		if n.observer != nil {
			n.raft.DeregisterObserver(n.observer)
		}
		err = n.raft.Shutdown().Error()
		n.wg.Wait()
		n.failQueued()
		n.closeStores()
		n.metrics.unregister()
		n.log.Info("raft stopped")
	})
	return err
}

// mapErr turns raft's errors into this package's.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w (%v)", ErrOutcomeUnknown, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	}
	return fmt.Errorf("ha: %w", err)
}

// observe tracks which peers the leader fails to heartbeat (Status).
func (n *Node) observe() {
	defer n.wg.Done()
	for {
		select {
		case <-n.closing:
			return
		case o := <-n.obsCh:
			n.peerMu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				n.peerDown[d.PeerID] = d.LastContact
			case raft.ResumedHeartbeatObservation:
				delete(n.peerDown, d.PeerID)
			}
			n.peerMu.Unlock()
		}
	}
}
