package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/edgesbc/edgesbc/config"
)

// Call is what routing knows of a new call.
type Call struct {
	Realm  string // where it arrived
	User   string // request-URI user as received
	Source string // ip:port it came from (recognises a trunk's calls)
	// To is the To user. A carrier that calls a registered trunk often
	// sends the registered account in the request-URI and the dialled
	// number in To: then To is the called number.
	To string
}

type dialRule struct {
	name   string
	from   string
	prefix string
	re     *regexp.Regexp
	prio   int
	times  []window
	groups [][]choice // by trunk priority, lowest first
	realm  string
}

type choice struct {
	trunk  *Trunk
	weight int
}

type window struct {
	days     uint8 // bit per time.Weekday; 0 = every day
	from, to int   // minutes after midnight
	loc      *time.Location
}

// SetDialplan adds trunks and the dial plan's rules to the router. Rules
// are tried before the plain routes, lowest priority first.
func (r *Router) SetDialplan(trunks []*Trunk, rules []config.DialRule) error {
	r.trunks = map[string]*Trunk{}
	for _, t := range trunks {
		r.trunks[t.Name] = t
		r.trunkList = append(r.trunkList, t)
	}
	r.rules = nil
	for i, c := range rules {
		k := fmt.Sprintf("routing.rules[%d]", i)
		dr := &dialRule{name: c.Name, from: c.FromRealm, prefix: c.Prefix, prio: c.Priority}
		if c.Regex != "" {
			re, err := regexp.Compile(c.Regex)
			if err != nil {
				return fmt.Errorf("%s.regex: %w", k, err)
			}
			dr.re = re
		}
		for j, w := range c.Time {
			win, err := compileWindow(w)
			if err != nil {
				return fmt.Errorf("%s.time[%d]: %w", k, j, err)
			}
			dr.times = append(dr.times, win)
		}
		byPrio := map[int][]choice{}
		var prios []int
		for j, tc := range c.Trunks {
			t := r.trunks[tc.Trunk]
			if t == nil {
				return fmt.Errorf("%s.trunks[%d]: unknown trunk %q", k, j, tc.Trunk)
			}
			dr.realm = t.Realm
			if _, ok := byPrio[tc.Priority]; !ok {
				prios = append(prios, tc.Priority)
			}
			w := tc.Weight
			if w < 1 {
				w = 1
			}
			byPrio[tc.Priority] = append(byPrio[tc.Priority], choice{t, w})
		}
		sort.Ints(prios)
		for _, p := range prios {
			dr.groups = append(dr.groups, byPrio[p])
		}
		r.rules = append(r.rules, dr)
	}
	sort.SliceStable(r.rules, func(i, j int) bool { return r.rules[i].prio < r.rules[j].prio })
	return nil
}

func compileWindow(w config.TimeWindow) (window, error) {
	var win window
	for _, d := range w.Days {
		wd, ok := config.Weekday(d)
		if !ok {
			return win, fmt.Errorf("%q is not a weekday", d)
		}
		win.days |= 1 << wd
	}
	var err error
	if win.from, err = config.ParseClock(w.From); err != nil {
		return win, err
	}
	if win.to, err = config.ParseClock(w.To); err != nil {
		return win, err
	}
	tz := w.Timezone
	if tz == "" {
		tz = "UTC"
	}
	if win.loc, err = time.LoadLocation(tz); err != nil {
		return win, err
	}
	return win, nil
}

// contains reports whether the instant falls in the window, in the
// window's zone. A window whose end is not after its start runs past
// midnight; its early-morning part belongs to the previous day's entry.
func (w window) contains(now time.Time) bool {
	t := now.In(w.loc)
	m := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	if w.from < w.to {
		return w.dayOK(day) && m >= w.from && m < w.to
	}
	if m >= w.from {
		return w.dayOK(day)
	}
	if m < w.to {
		return w.dayOK((day + 6) % 7)
	}
	return false
}

func (w window) dayOK(d time.Weekday) bool { return w.days == 0 || w.days&(1<<d) != 0 }

func (dr *dialRule) matches(realm, number string, now time.Time) bool {
	if dr.from != realm {
		return false
	}
	if dr.prefix != "" && !strings.HasPrefix(number, dr.prefix) {
		return false
	}
	if dr.re != nil && !dr.re.MatchString(number) {
		return false
	}
	if len(dr.times) == 0 {
		return true
	}
	for _, w := range dr.times {
		if w.contains(now) {
			return true
		}
	}
	return false
}

// order is the rule's trunks in the order to try them: priority groups
// lowest first, each group in a weighted random order (RFC 2782 style:
// pick by weight among those left, repeat).
func (dr *dialRule) order(intn func(int) int) []*Trunk {
	var out []*Trunk
	for _, g := range dr.groups {
		left := append([]choice(nil), g...)
		for len(left) > 0 {
			total := 0
			for _, c := range left {
				total += c.weight
			}
			n := intn(total)
			i := 0
			for ; i < len(left)-1; i++ {
				if n < left[i].weight {
					break
				}
				n -= left[i].weight
			}
			out = append(out, left[i].trunk)
			left = append(left[:i], left[i+1:]...)
		}
	}
	return out
}

// inboundTrunk is the trunk of the call's realm whose target the call
// came from (address and port, else address only, first in config
// order), or nil.
func (r *Router) inboundTrunk(realm, source string) *Trunk {
	ip, port := source, 0
	if ap, err := netip.ParseAddrPort(source); err == nil {
		ip, port = ap.Addr().Unmap().String(), int(ap.Port())
	}
	var byIP *Trunk
	for _, t := range r.trunkList {
		if t.Realm != realm {
			continue
		}
		switch t.sourceMatch(ip, port) {
		case 2:
			return t
		case 1:
			if byIP == nil {
				byIP = t
			}
		}
	}
	return byIP
}

// RouteCall picks where a call goes: a number that came from a trunk is
// first normalized to E.164 by that trunk's inbound rules; then the dial
// plan's rules (by priority), then the plain routes. A rule whose trunks
// are all down matches with no targets (the caller answers 503).
func (r *Router) RouteCall(c Call) (Decision, bool) {
	in := r.inboundTrunk(c.Realm, c.Source)
	called := c.User
	if in != nil && in.Register.Enabled && in.Creds != nil && c.User == in.Creds.Username && c.To != "" {
		called = c.To
	}
	number := in.FromTrunk(called)
	now := time.Now()
	if r.now != nil {
		now = r.now()
	}
	for _, dr := range r.rules {
		if !dr.matches(c.Realm, number, now) {
			continue
		}
		d := Decision{Route: dr.name, ToRealm: dr.realm, InTrunk: in, Called: number}
		intn := rand.IntN
		if r.intn != nil {
			intn = r.intn
		}
		for _, t := range dr.order(intn) {
			for _, tg := range t.UpTargets() {
				d.Targets = append(d.Targets, tg)
				d.Trunks = append(d.Trunks, t)
				d.TargetTimeout = max(d.TargetTimeout, t.TargetTimeout)
			}
		}
		if d.TargetTimeout == 0 {
			d.TargetTimeout = 2 * time.Second
		}
		return d, true
	}
	d, ok := r.Route(c.Realm, number)
	d.InTrunk, d.Called = in, number
	return d, ok
}

// Trunk returns the trunk of target i, nil for a plain route target.
func (d Decision) Trunk(i int) *Trunk {
	if i < 0 || i >= len(d.Trunks) {
		return nil
	}
	return d.Trunks[i]
}

// CalledFor is the called number for target i: E.164, converted to the
// trunk's format when the target is a trunk's.
func (d Decision) CalledFor(i int, received string) string {
	n := d.Called
	if n == "" {
		n = received
	}
	return d.Trunk(i).ToTrunk(n)
}

// CallerFor converts a calling number (From, P-Asserted-Identity user)
// from the inbound trunk's format to E.164 and on into target i's trunk's
// format.
func (d Decision) CallerFor(i int, caller string) string {
	return d.Trunk(i).ToTrunk(d.InTrunk.FromTrunk(caller))
}

// Timeout is how long target i may stay silent.
func (d Decision) Timeout(i int) time.Duration {
	if t := d.Trunk(i); t != nil && t.TargetTimeout > 0 {
		return t.TargetTimeout
	}
	return d.TargetTimeout
}

// Trunks lists the router's trunks in config order.
func (r *Router) Trunks() []*Trunk { return r.trunkList }
