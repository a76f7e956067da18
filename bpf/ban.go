package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
)

// Ban drops every packet from addr (IPv4 or IPv6; an IPv4-mapped IPv6
// address bans the IPv4 source) arriving on the attached interfaces (SIP
// and media alike, before any parsing beyond the IP header) until `until`;
// a zero until bans until Unban. Banning an address again moves its end.
func (d *Datapath) Ban(addr netip.Addr, until time.Time) error {
	m, key, err := banKey(&d.objs, addr)
	if err != nil {
		return err
	}
	var end uint64
	if !until.IsZero() {
		left := time.Until(until)
		if left <= 0 {
			return d.Unban(addr)
		}
		end = monotonicNow() + uint64(left)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	err = m.Update(key, end, ebpf.UpdateNoExist)
	if errors.Is(err, ebpf.ErrKeyExist) {
		err = m.Update(key, end, ebpf.UpdateExist)
		if err != nil {
			return fmt.Errorf("bpf: ban %s: %w", addr, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("bpf: ban %s: %w", addr, err)
	}
	return d.addBanCount(1)
}

// Unban lifts addr's ban (no error when there is none).
func (d *Datapath) Unban(addr netip.Addr) error {
	m, key, err := banKey(&d.objs, addr)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	err = m.Delete(key)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bpf: unban %s: %w", addr, err)
	}
	return d.addBanCount(-1)
}

// BanCount returns the number of entries on the ban list (expired ones
// included until ExpireBans removes them).
func (d *Datapath) BanCount() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, ErrClosed
	}
	var n uint32
	if err := d.objs.BanCount.Lookup(uint32(0), &n); err != nil {
		return 0, fmt.Errorf("bpf: read ban count: %w", err)
	}
	return int(n), nil
}

// ExpireBans removes bans that have ended (both families) and returns how
// many.
func (d *Datapath) ExpireBans() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, ErrClosed
	}
	now := monotonicNow()
	n4, err := expire[uint32](d.objs.Bans, now)
	if err == nil {
		var n6 int
		n6, err = expire[[16]byte](d.objs.Bans6, now)
		n4 += n6
	}
	if cerr := d.addBanCount(-n4); err == nil {
		err = cerr
	}
	return n4, err
}

// expire deletes m's entries whose end has passed now and returns how many.
func expire[K comparable](m *ebpf.Map, now uint64) (int, error) {
	var (
		key     K
		end     uint64
		expired []K
	)
	it := m.Iterate()
	for it.Next(&key, &end) {
		if end != 0 && end <= now {
			expired = append(expired, key)
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("bpf: read bans: %w", err)
	}
	n := 0
	for _, k := range expired {
		if err := m.Delete(k); err == nil {
			n++
		}
	}
	return n, nil
}

// addBanCount keeps ban_count[0] (read by the programs to skip the ban
// lookup when nothing is banned) in step with the bans and bans6 maps. Callers hold mu.
func (d *Datapath) addBanCount(delta int) error {
	var n uint32
	if err := d.objs.BanCount.Lookup(uint32(0), &n); err != nil {
		return fmt.Errorf("bpf: read ban count: %w", err)
	}
	n = uint32(max(int(n)+delta, 0))
	if err := d.objs.BanCount.Update(uint32(0), n, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("bpf: write ban count: %w", err)
	}
	return nil
}

// banKey picks the ban map for addr's family and addr's key there.
func banKey(objs *datapathObjects, addr netip.Addr) (*ebpf.Map, any, error) {
	addr = addr.Unmap()
	switch {
	case addr.Is4():
		b := addr.As4()
		// The program reads iph->saddr as a native u32 from network-order bytes.
		return objs.Bans, binary.NativeEndian.Uint32(b[:]), nil
	case addr.Is6():
		// The wire's 16 bytes, as the program copies ip6->saddr.
		return objs.Bans6, addr.As16(), nil
	}
	return nil, nil, fmt.Errorf("%w: cannot ban %s", ErrBadFlow, addr)
}
