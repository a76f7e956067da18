#!/usr/bin/env bash
# Installs what sbcd's tests and lab need, from Debian's packages. Idempotent:
# it does nothing when every tool is already there.
set -euo pipefail

need=()
command -v sipp    >/dev/null || need+=(sip-tester)
command -v tshark  >/dev/null || need+=(tshark)
command -v ip      >/dev/null || need+=(iproute2)
command -v ethtool >/dev/null || need+=(ethtool)
command -v ping    >/dev/null || need+=(iputils-ping)
command -v svwar   >/dev/null || need+=(sipvicious)
command -v baresip >/dev/null || need+=(baresip-core) # SRTP interop test (test/baresip_test.go)
command -v nft     >/dev/null || need+=(nftables)
command -v sysctl  >/dev/null || need+=(procps)
command -v nsenter >/dev/null || need+=(util-linux)
command -v systemd-analyze >/dev/null || need+=(systemd) # verifies configs/sbcd.service (cmd/sbcd/unit_test.go)
# The CDR PostgreSQL test (cdr/postgres_test.go) runs Debian's server
# binaries, which are not on PATH: check the real path.
pg=(/usr/lib/postgresql/*/bin/postgres)
command -v "${pg[-1]}" >/dev/null || need+=(postgresql)
command -v node    >/dev/null || need+=(nodejs) # HEP tests' decoder (internal/hepjs)
command -v npm     >/dev/null || need+=(npm)
command -v chromium >/dev/null || need+=(chromium) # the dashboard test (cmd/sbcd/dashboard_test.go): headless, --dump-dom

# The HEP test decodes sbcd's packets with sipcapture's hep-js (npm),
# pinned by the package-lock beside it.
hepdecode() {
  local d
  d="$(dirname "$0")/../internal/hepjs/testdata"
  if [ ! -d "$d/node_modules/hep-js" ]; then
    (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
    echo "deps: installed hep-js in $d"
  fi
}
if [ ${#need[@]} -eq 0 ]; then
  hepdecode
  echo "deps: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: need root to install ${need[*]} (or install them yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no, quietly.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
echo "deps: installed ${need[*]}"
hepdecode
