package bpf

import "errors"

var (
	// ErrUnsupported says the fast path cannot run here: no privileges, no
	// BPF filesystem, a verifier or kernel refusal, or an interface that
	// is missing or cannot take the program. Errors from Open wrap it with
	// the reason; the caller relays in user space.
	ErrUnsupported = errors.New("bpf: kernel fast path unsupported")
	// ErrIncompatible says pinned state under the pin directory has a
	// layout this binary cannot use (Unload it, or bump layoutVersion).
	ErrIncompatible = errors.New("bpf: pinned state incompatible")
	// ErrBadFlow says a FlowKey/FlowAction pair cannot be offloaded
	// (mixed address families, missing MAC or interface, zero port).
	ErrBadFlow = errors.New("bpf: flow not offloadable")
	// ErrClosed is returned by methods of a closed Datapath.
	ErrClosed = errors.New("bpf: datapath closed")
)
