package sbc

import (
	"sync"

	"github.com/emiago/sipgo/sip"
)

// sipgo's request handlers get (*sip.Request, sip.ServerTransaction): no
// context, no per-request value. The guard's interceptors learn things a
// handler they wrap needs (the request's size on the wire, the user its
// digest answer proved), so they keep them here, keyed by the request,
// for exactly as long as the wrapped handler runs. Each guard (so each
// SBC) has its own.
type reqValue[T any] struct {
	m sync.Map // *sip.Request -> T
}

// with runs f with v known for req, and forgets it after.
func (rv *reqValue[T]) with(req *sip.Request, v T, f func()) {
	rv.m.Store(req, v)
	defer rv.m.Delete(req)
	f()
}

func (rv *reqValue[T]) get(req *sip.Request) (T, bool) {
	v, ok := rv.m.Load(req)
	if !ok {
		var zero T
		return zero, false
	}
	return v.(T), true
}
