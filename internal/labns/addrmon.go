package labns

import (
	"bufio"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// AddrEvent is one IPv4 address added or deleted in a namespace, stamped
// by `ip -ts monitor address` (the kernel's netlink event, not a poll).
type AddrEvent struct {
	At    time.Time
	NS    string
	Addr  string // without the prefix length
	Added bool
}

// AddrMonitor records every IPv4 address change in a set of namespaces,
// with each namespace's addresses when it started.
type AddrMonitor struct {
	mu      sync.Mutex
	events  []AddrEvent
	initial map[string]map[string]bool
	cmds    []*exec.Cmd
	done    []chan struct{}
}

// markerAddr is added and removed on lo once per namespace at the start:
// seeing it proves the monitor is subscribed before the snapshot is taken.
const markerAddr = "127.0.0.99"

// MonitorAddrs starts one `ip -ts -4 monitor address` per namespace and
// returns once every one is subscribed.
func MonitorAddrs(nss ...string) (*AddrMonitor, error) {
	m := &AddrMonitor{initial: map[string]map[string]bool{}}
	for _, ns := range nss {
		seen := make(chan struct{})
		var once sync.Once
		cmd := exec.Command("ip", "-n", ns, "-ts", "-4", "monitor", "address")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.StdoutPipe()
		if err != nil {
			m.Stop()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			m.Stop()
			return nil, fmt.Errorf("ip monitor in %s: %w", ns, err)
		}
		done := make(chan struct{})
		m.cmds, m.done = append(m.cmds, cmd), append(m.done, done)
		go func() {
			defer close(done)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				ev, ok := parseAddrEvent(ns, sc.Text())
				if !ok {
					continue
				}
				if ev.Addr == markerAddr {
					once.Do(func() { close(seen) })
					continue
				}
				m.mu.Lock()
				m.events = append(m.events, ev)
				m.mu.Unlock()
			}
		}()
		if out, err := exec.Command("ip", "-n", ns, "addr", "add", markerAddr+"/32", "dev", "lo").CombinedOutput(); err != nil {
			m.Stop()
			return nil, fmt.Errorf("marker address in %s: %v %s", ns, err, out)
		}
		_ = exec.Command("ip", "-n", ns, "addr", "del", markerAddr+"/32", "dev", "lo").Run()
		select {
		case <-seen:
		case <-time.After(5 * time.Second):
			m.Stop()
			return nil, fmt.Errorf("ip monitor in %s: marker address never seen", ns)
		}
		snap, err := exec.Command("ip", "-n", ns, "-4", "-o", "addr", "show").Output()
		if err != nil {
			m.Stop()
			return nil, fmt.Errorf("addresses of %s: %w", ns, err)
		}
		held := map[string]bool{}
		for _, l := range strings.Split(string(snap), "\n") {
			if f := strings.Fields(l); len(f) >= 4 && f[2] == "inet" {
				held[strings.SplitN(f[3], "/", 2)[0]] = true
			}
		}
		m.initial[ns] = held
	}
	return m, nil
}

// parseAddrEvent reads one line of `ip -ts -4 monitor address`:
// "[2026-12-03T18:45:18.402730] [Deleted ]3: v0    inet 203.0.113.99/32 ...".
func parseAddrEvent(ns, l string) (AddrEvent, bool) {
	if !strings.HasPrefix(l, "[") {
		return AddrEvent{}, false
	}
	end := strings.IndexByte(l, ']')
	if end < 0 {
		return AddrEvent{}, false
	}
	at, err := time.ParseInLocation("2006-01-02T15:04:05.000000", l[1:end], time.Local)
	if err != nil {
		return AddrEvent{}, false
	}
	rest := strings.TrimSpace(l[end+1:])
	ev := AddrEvent{At: at, NS: ns, Added: !strings.HasPrefix(rest, "Deleted ")}
	f := strings.Fields(rest)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "inet" {
			ev.Addr = strings.SplitN(f[i+1], "/", 2)[0]
			return ev, true
		}
	}
	return AddrEvent{}, false
}

// count is how many events have been seen so far.
func (m *AddrMonitor) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.events)
}

// Stop ends the monitors and returns the events, oldest first.
func (m *AddrMonitor) Stop() []AddrEvent {
	for i, c := range m.cmds {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_ = c.Wait()
		<-m.done[i]
	}
	m.cmds, m.done = nil, nil
	m.mu.Lock()
	defer m.mu.Unlock()
	ev := append([]AddrEvent(nil), m.events...)
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].At.Before(ev[j].At) })
	return ev
}

// Span is a stretch of time in which the same namespaces held one of the
// watched addresses. From is zero for the span the monitor started in,
// To is zero for the one still going at the last event.
type Span struct {
	From, To time.Time
	Holders  []string
}

// Timeline replays the events over the namespaces' starting addresses and
// returns who held any of addrs, span by span.
func (m *AddrMonitor) Timeline(events []AddrEvent, addrs ...string) []Span {
	watched := map[string]bool{}
	for _, a := range addrs {
		watched[a] = true
	}
	held := map[string]map[string]bool{}
	m.mu.Lock()
	for ns, set := range m.initial {
		held[ns] = map[string]bool{}
		for a := range set {
			if watched[a] {
				held[ns][a] = true
			}
		}
	}
	m.mu.Unlock()
	holders := func() []string {
		h := []string{}
		for ns, set := range held {
			if len(set) > 0 {
				h = append(h, ns)
			}
		}
		sort.Strings(h)
		return h
	}
	out := []Span{{Holders: holders()}}
	for _, ev := range events {
		if !watched[ev.Addr] {
			continue
		}
		if held[ev.NS] == nil {
			held[ev.NS] = map[string]bool{}
		}
		if ev.Added {
			held[ev.NS][ev.Addr] = true
		} else {
			delete(held[ev.NS], ev.Addr)
		}
		h := holders()
		if cur := &out[len(out)-1]; strings.Join(h, ",") != strings.Join(cur.Holders, ",") {
			cur.To = ev.At
			out = append(out, Span{From: ev.At, Holders: h})
		}
	}
	return out
}

// Overlaps is every span of the timeline in which two or more namespaces
// held one of addrs.
func (m *AddrMonitor) Overlaps(events []AddrEvent, addrs ...string) []Span {
	var o []Span
	for _, sp := range m.Timeline(events, addrs...) {
		if len(sp.Holders) > 1 {
			o = append(o, sp)
		}
	}
	return o
}

// Empty is every span in which no namespace held any of addrs.
func (m *AddrMonitor) Empty(events []AddrEvent, addrs ...string) []Span {
	var o []Span
	for _, sp := range m.Timeline(events, addrs...) {
		if len(sp.Holders) == 0 {
			o = append(o, sp)
		}
	}
	return o
}
