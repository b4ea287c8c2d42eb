#!/usr/bin/env bash
# A/B of two compiler revisions on the CPU: builds REV in a temporary git
# worktree, compiles each KERNEL of bench/specs.sattn ahead of time with
# REV's sattnc and with this tree's (each with its own runtime), and times
# them with bench/aot_time.c in alternated rounds at seq 4096 and the
# runtime's default threads. Run after make build. Writes
# bench/results/cpu-ab.txt.
#   bench/ab_cpu.sh REV KERNEL...
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$1
shift
out=bench/results/cpu-ab.txt
tmp=$(mktemp -d)
wt=$tmp/base
trap 'git worktree remove --force "$wt" 2>/dev/null || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$wt" "$rev" > /dev/null
make -C "$wt" build > "$tmp/base-build.log" 2>&1 || { cat "$tmp/base-build.log"; exit 1; }
for side in base ours; do
  root=$([ $side = base ] && echo "$wt" || pwd)
  rt=$(find "$root/build" -name libsattn_runtime.a | head -1)
  for k in "$@"; do
    mkdir -p "$tmp/$side/$k"
    "$root/build/bin/sattnc" bench/specs.sattn --kernel "$k" --emit=obj -o "$tmp/$side/$k/k.o"
    "$root/build/bin/sattnc" bench/specs.sattn --kernel "$k" --emit=header -o "$tmp/$side/$k/kernel.h"
    cc -O2 -I"$tmp/$side/$k" -DKNAME="$k" -DELEM=0 bench/aot_time.c "$tmp/$side/$k/k.o" "$rt" -lpthread -lm \
      -o "$tmp/$side/$k/run"
  done
done
{
  echo "# bench/ab_cpu.sh $rev $*   ($(date -u +%Y-%m-%dT%H:%MZ)): median ms of 5 calls, seq 4096,"
  echo "# base $(git -C "$wt" rev-parse --short HEAD) against ours $(git rev-parse --short HEAD), alternated"
  echo "round kernel base ours"
  for r in 1 2 3 4 5; do
    for k in "$@"; do
      echo "$r $k $("$tmp/base/$k/run" 4096 5) $("$tmp/ours/$k/run" 4096 5)"
    done
  done
} | tee "$out"
