#!/usr/bin/env bash
# The EdgeSBC netns lab. Addresses are fixed by docs/architecture.md ("The
# netns lab"); tests and benchmarks rely on them, so change them there first.
#
#   lab.sh up        car <-> sbc <-> ent   (single SBC node)
#   lab.sh down      delete every lab namespace (also the HA ones)
#   lab.sh ha-up     car, ent, sbca, sbcb, wit on bridges in namespace sw
#   lab.sh ha-down   same as down
#   lab.sh status    list lab namespaces and their addresses
#
# Every lab interface is dual-stack: IPv6 carrier 2001:db8:1::/64,
# enterprise 2001:db8:2::/64, control 2001:db8:c::/64, each host's last
# group mirroring its IPv4 last octet (203.0.113.10 -> 2001:db8:1::10).
#
# Needs root and the Debian packages iproute2, ethtool, iputils-ping.
set -euo pipefail

ALL_NS=(car sbc ent sw sbca sbcb wit)

die() { echo "lab.sh: $*" >&2; exit 1; }

ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

# new_ns NS: fresh namespace with lo up (the admin API listens on 127.0.0.1).
new_ns() {
	ip netns add "$1"
	no_dad "$1"
	ip -n "$1" link set lo up
}

# veth NS1 DEV1 NS2 DEV2: create the pair directly inside the namespaces so
# nothing is ever left behind (or clashes) in the root namespace.
veth() {
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

addr() { ip -n "$1" addr add "$3" dev "$2"; }

# addr6 NS DEV CIDR: an IPv6 address usable at once. nodad: duplicate
# address detection would hold it "tentative" (unbindable) for a second or
# more, and the lab's addresses are fixed and unique.
addr6() { ip -n "$1" addr add "$3" dev "$2" nodad; }

# new_ns turns DAD off namespace-wide too, so the VIPs an SBC node adds
# later (ha/) and the link-local addresses are usable at once as well.
no_dad() {
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0
	ip netns exec "$1" sysctl -qw net.ipv6.conf.default.accept_dad=0
}

# nic_like NS DEV: make a veth behave like a real NIC. tx off: no
# CHECKSUM_PARTIAL packets, which an XDP checksum update would corrupt.
# gro on: lets XDP_REDIRECT into the peer veth be delivered instead of dropped.
nic_like() {
	ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
	ip netns exec "$1" ethtool -K "$2" gro on >/dev/null
}

# The SBC is a B2BUA and media relay, never a router: the realms must only
# meet through sbcd.
no_forward() {
	ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=0
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.forwarding=0
}

# can NS DST: one ping, a few tries so a just-created link gets its ARP done.
can() {
	local i
	for i in 1 2 3; do
		ip netns exec "$1" ping -c1 -W1 "$2" >/dev/null 2>&1 && return 0
	done
	return 1
}

# check NS DST: print and record whether NS reaches DST.
FAILED=0
check() {
	if can "$1" "$2"; then echo "ok    $1 -> $2"; else echo "FAIL  $1 -> $2"; FAILED=1; fi
}

# isolated NS DST: carrier and enterprise must never reach each other.
isolated() {
	if ip netns exec "$1" ping -c1 -W1 "$2" >/dev/null 2>&1; then
		echo "FAIL  $1 -> $2 reachable, the realms are not isolated"; FAILED=1
	else
		echo "ok    $1 -> $2 unreachable (as it must be)"
	fi
}

down() {
	local ns br
	for ns in "${ALL_NS[@]}"; do
		if ns_exists "$ns"; then ip netns del "$ns"; fi
	done
}

up() {
	down # idempotent: always rebuild from scratch
	new_ns car; new_ns sbc; new_ns ent

	veth car car0 sbc ext0
	veth sbc int0 ent ent0
	addr car car0 203.0.113.10/24
	addr sbc ext0 203.0.113.1/24
	addr sbc int0 198.51.100.1/24
	addr ent ent0 198.51.100.10/24
	addr6 car car0 2001:db8:1::10/64
	addr6 sbc ext0 2001:db8:1::1/64
	addr6 sbc int0 2001:db8:2::1/64
	addr6 ent ent0 2001:db8:2::10/64
	nic_like car car0
	nic_like ent ent0
	no_forward sbc
	# No routes besides the connected ones: car and ent have no way to each other.

	check car 203.0.113.1
	check ent 198.51.100.1
	check car 2001:db8:1::1
	check ent 2001:db8:2::1
	isolated car 198.51.100.10
	isolated ent 203.0.113.10
	isolated car 2001:db8:2::10
	isolated ent 2001:db8:1::10
	[ "$FAILED" = 0 ] || die "lab up: checks failed"
	echo "lab up"
}

# plug NS DEV BRIDGE CIDR CIDR6: veth from NS into a bridge in sw. The
# bridge end is named NS-DEV and behaves like a NIC (switch port) too.
plug() {
	local port="$1-$2"
	veth "$1" "$2" sw "$port"
	ip -n sw link set "$port" master "$3"
	nic_like sw "$port"
	addr "$1" "$2" "$4"
	addr6 "$1" "$2" "$5"
}

ha_up() {
	down
	local ns br
	for ns in sw car ent sbca sbcb wit; do new_ns "$ns"; done

	# STP stays off (the default) so ports forward at once; there are no loops.
	for br in brext brint brctl; do
		ip -n sw link add "$br" type bridge
		ip -n sw link set "$br" up
	done

	plug car  car0 brext 203.0.113.10/24 2001:db8:1::10/64
	plug ent  ent0 brint 198.51.100.10/24 2001:db8:2::10/64
	nic_like car car0
	nic_like ent ent0
	# The VIPs (203.0.113.1, 198.51.100.1, 2001:db8:1::1, 2001:db8:2::1) are
	# added by the active node, not here.
	plug sbca ext0 brext 203.0.113.2/24 2001:db8:1::2/64
	plug sbca int0 brint 198.51.100.2/24 2001:db8:2::2/64
	plug sbca ctl0 brctl 192.0.2.2/24 2001:db8:c::2/64
	plug sbcb ext0 brext 203.0.113.3/24 2001:db8:1::3/64
	plug sbcb int0 brint 198.51.100.3/24 2001:db8:2::3/64
	plug sbcb ctl0 brctl 192.0.2.3/24 2001:db8:c::3/64
	plug wit  ctl0 brctl 192.0.2.4/24 2001:db8:c::4/64
	no_forward sbca
	no_forward sbcb

	check car 203.0.113.2
	check car 203.0.113.3
	check ent 198.51.100.2
	check sbca 192.0.2.3
	check wit 192.0.2.2
	check wit 192.0.2.3
	check car 2001:db8:1::2
	check ent 2001:db8:2::3
	check wit 2001:db8:c::2
	check sbca 2001:db8:c::3
	isolated car 198.51.100.10
	isolated car 2001:db8:2::10
	[ "$FAILED" = 0 ] || die "lab ha-up: checks failed"
	echo "lab ha up"
}

status() {
	local ns found=0
	for ns in "${ALL_NS[@]}"; do
		ns_exists "$ns" || continue
		found=1
		echo "[$ns]"
		ip -n "$ns" -br addr show | grep -v '^lo ' | sed 's/^/  /'
	done
	[ "$found" = 1 ] || echo "no lab namespaces"
}

[ "$(id -u)" = 0 ] || die "must run as root"
for tool in ip ethtool ping; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install iproute2 ethtool iputils-ping)"
done
case "${1:-}" in
up) up ;;
down | ha-down) down ;;
ha-up) ha_up ;;
status) status ;;
*) echo "usage: $0 up|down|ha-up|ha-down|status" >&2; exit 2 ;;
esac
