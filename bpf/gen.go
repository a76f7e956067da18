package bpf

// The C sources live in c/; the generated datapath_bpfel.go and
// datapath_bpfel.o are committed, so building needs no clang. `make
// generate` (or `go generate ./bpf`) rebuilds them with clang and
// libbpf-dev's headers.
//
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type flow_key -type flow_action -type flow_stats datapath c/datapath.c -- -I/usr/include/x86_64-linux-gnu -Ic
