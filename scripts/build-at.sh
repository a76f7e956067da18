#!/usr/bin/env bash
# build-at.sh REV OUT: build sbcd as it was at git revision REV into OUT,
# from a throwaway worktree, so a benchmark can run it beside this tree's
# build in one run (make bench-sip BASELINE=REV).
set -euo pipefail
rev=$1 out=$(realpath -m "$2")
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp" >/dev/null 2>&1 || rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp" "$rev" >/dev/null
(cd "$tmp" && go build -o "$out" ./cmd/sbcd)
echo "built sbcd at $(git rev-parse --short "$rev") into $out"
