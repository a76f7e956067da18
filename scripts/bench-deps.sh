#!/usr/bin/env bash
# Installs what the benchmarks compare sbcd with, from Debian's packages:
# for `make bench-media` rtpengine-daemon (run by the benchmark in
# user-space mode, --table=-1, inside namespace sbc) and nftables (kernel
# forwarding with DNAT/SNAT as the floor); for `make bench-overload`
# and `make bench-sip` kamailio (a stateful proxy, run by the benchmark
# in namespace sbc). Idempotent: it does nothing when all are there.
#
# There is no init system here to run rtpengine as a service, and the
# benchmark starts its own; the package's init script is kept from starting
# one while installing, and any rtpengine that still got started by the
# install is stopped by PID.
set -euo pipefail

need=()
command -v rtpengine >/dev/null || need+=(rtpengine-daemon)
command -v nft       >/dev/null || need+=(nftables)
command -v kamailio  >/dev/null || need+=(kamailio)
if [ ${#need[@]} -eq 0 ]; then
  echo "bench-deps: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "bench-deps: need root to install ${need[*]} (or install them yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# Keep invoke-rc.d from starting services while installing (only when no
# policy-rc.d is there already; the one we add is removed on exit).
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  added_policy=1
fi
daemons() { pgrep -x rtpengine || true; pgrep -x kamailio || true; }
before=$(daemons | tr "\n" " ")
cleanup() {
  if [ "$added_policy" = 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

apt-get update -qq
# No recommends: the kernel module (rtpengine-kernel-dkms) is not wanted,
# the benchmark uses rtpengine's user-space forwarding only.
apt-get install -y -qq --no-install-recommends "${need[@]}"

# Stop any rtpengine or kamailio the install started (not one that ran
# before it).
for pid in $(daemons); do
  case " $before " in *" $pid "*) continue ;; esac
  kill "$pid" 2>/dev/null || true
done
echo "bench-deps: installed ${need[*]}"
