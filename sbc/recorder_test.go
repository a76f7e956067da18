package sbc

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/edgesbc/edgesbc/topology"
)

// slowStore answers after a random delay, so writes of different calls
// overtake each other as they do against Raft.
type slowStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *slowStore) Put(k string, v []byte) error {
	time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func (s *slowStore) Delete(k string) error {
	time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *slowStore) Range(f func(string, []byte) bool) {}

// Calls that change, end, and change again (a late latch) in every order
// the goroutines allow: once the writers are done the store holds exactly
// the calls still up, each at its last state.
func TestRecorderEndsInOrder(t *testing.T) {
	store := &slowStore{m: map[string][]byte{}}
	s := &SBC{log: slog.New(slog.DiscardHandler), metrics: newMetrics(nil), media: PassThroughMedia{}, calls: newCallTable()}
	s.rec = newRecorder(s, store, s.metrics.Registry, s.log)
	s.rec.start()
	realm := &Realm{Name: "carrier"}
	leg := func(side Side, id string) *Leg {
		return &Leg{side: side, realm: realm, local: topology.Local{Transport: "UDP"}, d: topology.Dialog{CallID: id, LocalTag: "l", RemoteTag: "r", Target: sip.Uri{Scheme: "sip", Host: "192.0.2.10"}}}
	}
	var calls []*Call
	for i := range 300 {
		c := &Call{ID: fmt.Sprint("c", i), a: leg(SideA, fmt.Sprint("a", i)), b: leg(SideB, fmt.Sprint("b", i)), state: StateConfirmed, done: make(chan struct{})}
		calls = append(calls, c)
	}
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() {
			for k := range 3 {
				c.mu.Lock()
				c.b.cseq = uint32(k + 1)
				c.mu.Unlock()
				s.changed(c)
			}
			if i%3 != 0 { // two calls in three end
				c.mu.Lock()
				c.state = StateEnded
				c.mu.Unlock()
				s.recordEnded(c)
				s.changed(c) // a late latch of an ended call writes nothing
				s.rec.mark(c)
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.rec.flush(ctx); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.m) != 100 {
		t.Fatalf("%d records, want the 100 calls still up", len(store.m))
	}
	for i, c := range calls {
		v, ok := store.m[recordKey(c.ID)]
		if ok != (i%3 == 0) {
			t.Fatalf("call %d: record present %v", i, ok)
		}
		if ok {
			r, err := decodeRecord(v)
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if r.Legs[1].CSeq != 3 {
				t.Fatalf("call %d: leg B CSeq %d, want the last (3)", i, r.Legs[1].CSeq)
			}
		}
	}
	s.rec.close(ctx)
}
