package bpf

// The C sources live in c/; the generated *_bpfel.go and *_bpfel.o are
// committed, so building needs no clang. `make generate` (or `go generate
// ./bpf`) rebuilds them with clang and libbpf-dev's headers.
//
//   datapath: xdp_fwd, tc_fwd, xdp_probe and the flow maps
//   monitor:  counts XDP redirects dropped on the way out (tp_btf)
//
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type flow_key -type flow_action -type flow_stats datapath c/datapath.c -- -I/usr/include/x86_64-linux-gnu -Ic
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type xmit_key -type xmit_val -type redir_key monitor c/monitor.c -- -I/usr/include/x86_64-linux-gnu -Ic
