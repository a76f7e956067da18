package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
)

// Ban drops every IPv4 packet from addr arriving on the attached
// interfaces (SIP and media alike, before any parsing beyond the IP
// header) until `until`; a zero until bans until Unban. Banning an address
// again moves its end. IPv6 sources cannot be banned here.
func (d *Datapath) Ban(addr netip.Addr, until time.Time) error {
	key, err := banKey(addr)
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
	err = d.objs.Bans.Update(key, end, ebpf.UpdateNoExist)
	if errors.Is(err, ebpf.ErrKeyExist) {
		err = d.objs.Bans.Update(key, end, ebpf.UpdateExist)
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
	key, err := banKey(addr)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	err = d.objs.Bans.Delete(key)
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

// ExpireBans removes bans that have ended and returns how many.
func (d *Datapath) ExpireBans() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, ErrClosed
	}
	now := monotonicNow()
	var (
		key     uint32
		end     uint64
		expired []uint32
	)
	it := d.objs.Bans.Iterate()
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
		if err := d.objs.Bans.Delete(k); err == nil {
			n++
		}
	}
	return n, d.addBanCount(-n)
}

// addBanCount keeps ban_count[0] (read by the programs to skip the ban
// lookup when nothing is banned) in step with the bans map. Callers hold mu.
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

func banKey(addr netip.Addr) (uint32, error) {
	addr = addr.Unmap()
	if !addr.Is4() {
		return 0, fmt.Errorf("%w: only IPv4 sources can be banned, got %s", ErrBadFlow, addr)
	}
	b := addr.As4()
	// The program reads iph->saddr as a native u32 from network-order bytes.
	return binary.NativeEndian.Uint32(b[:]), nil
}
