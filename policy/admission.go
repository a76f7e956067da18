package policy

import (
	"sort"
	"sync"
	"time"
)

// AdmissionLimits bound the calls under one key ("realm:carrier",
// "trunk:acme"): MaxCalls concurrent (0: no limit) and MaxCPS new calls a
// second (0: no limit; bursts up to one second's worth, at least 1).
type AdmissionLimits struct {
	MaxCalls   int
	MaxCPS     float64
	RetryAfter time.Duration
}

// Rejection says why a call was refused and when to retry.
type Rejection struct {
	Key        string
	Reason     string // "max_calls" or "max_cps"
	RetryAfter time.Duration
}

// Admission is call admission control over any number of keys. A call is
// admitted under several keys at once (its realm, its trunk), all or none,
// under one lock, so a limit holds exactly however many calls race for it.
type Admission struct {
	mu   sync.Mutex
	keys map[string]*admissionKey
}

type admissionKey struct {
	lim    AdmissionLimits
	active int
	cps    Bucket
}

// AdmissionState is one key's limits and load, for the admin API.
type AdmissionState struct {
	Key      string  `json:"key"`
	Active   int     `json:"active"`
	MaxCalls int     `json:"max_calls"`
	MaxCPS   float64 `json:"max_cps"`
}

// NewAdmission makes an Admission with no keys (admits everything).
func NewAdmission() *Admission {
	return &Admission{keys: map[string]*admissionKey{}}
}

// Configure sets (or replaces) a key's limits; calls in progress stay
// counted.
func (a *Admission) Configure(key string, lim AdmissionLimits) {
	a.mu.Lock()
	defer a.mu.Unlock()
	burst := max(lim.MaxCPS, 1)
	k, ok := a.keys[key]
	if !ok {
		k = &admissionKey{}
		a.keys[key] = k
	}
	k.lim = lim
	k.cps = Bucket{Rate: lim.MaxCPS, Burst: burst, tokens: burst}
}

// Ticket is an admitted call's hold on its keys; Release it exactly when
// the call ends (extra calls are harmless).
type Ticket struct {
	a    *Admission
	keys []*admissionKey
	once sync.Once
}

// Admit admits a call under every configured key among keys (unknown keys
// are ignored), or refuses it naming the first limit hit.
func (a *Admission) Admit(now time.Time, keys ...string) (*Ticket, *Rejection) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := &Ticket{a: a}
	for _, name := range keys {
		k, ok := a.keys[name]
		if !ok {
			continue
		}
		if k.lim.MaxCalls > 0 && k.active >= k.lim.MaxCalls {
			return nil, &Rejection{Key: name, Reason: "max_calls", RetryAfter: k.lim.RetryAfter}
		}
		if k.lim.MaxCPS > 0 && !k.cps.Peek(now) {
			ra := max(k.lim.RetryAfter, k.cps.Wait(now))
			return nil, &Rejection{Key: name, Reason: "max_cps", RetryAfter: ra}
		}
		t.keys = append(t.keys, k)
	}
	for _, k := range t.keys {
		k.active++
		if k.lim.MaxCPS > 0 {
			k.cps.Take(now)
		}
	}
	return t, nil
}

// Release gives the call's places back.
func (t *Ticket) Release() {
	if t == nil {
		return
	}
	t.once.Do(func() {
		t.a.mu.Lock()
		for _, k := range t.keys {
			k.active--
		}
		t.a.mu.Unlock()
	})
}

// Active is the number of admitted calls under key.
func (a *Admission) Active(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if k, ok := a.keys[key]; ok {
		return k.active
	}
	return 0
}

// State lists every key, sorted.
func (a *Admission) State() []AdmissionState {
	a.mu.Lock()
	out := make([]AdmissionState, 0, len(a.keys))
	for n, k := range a.keys {
		out = append(out, AdmissionState{Key: n, Active: k.active, MaxCalls: k.lim.MaxCalls, MaxCPS: k.lim.MaxCPS})
	}
	a.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
