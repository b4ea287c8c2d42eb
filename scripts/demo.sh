#!/usr/bin/env bash
# The main job on the bundled examples: compile every spec to verified,
# canonical sattn IR and print a summary. (The CPU, CUDA and accelerator
# back ends are not built yet; when they land, this runs them too.)
set -euo pipefail
build=${1:-build}
bin=$build/bin
printf '%-22s %-22s %-34s %-34s %5s %6s\n' file spec shape pattern ops ms
for f in examples/*.sattn; do
  names=$("$bin/sattnc" "$f" --emit=ast | awk '/^attention /{print $2}')
  for n in $names; do
    ast=$("$bin/sattnc" "$f" --emit=ast --kernel "$n")
    shape=$(echo "$ast" | awk '/^  shape/{sub(/^  shape /,""); gsub(/batch=|heads=|kv_heads=|seq=|head_dim=/,""); print}')
    pattern=$(echo "$ast" | awk 'NR>5 && !/^  (layout|precision|scale)/{sub(/^  /,""); split($0,w," "); printf "%s%s", sep, w[1]; sep="+"}')
    start=$(date +%s%N)
    ops=$("$bin/sattnc" "$f" --emit=mlir-canonical --kernel "$n" | grep -c '"sattn\.')
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    printf '%-22s %-22s %-34s %-34s %5d %6d\n' "$(basename "$f")" "$n" "$shape" "${pattern:-dense}" "$ops" "$ms"
  done
done
echo "shape is batch heads kv_heads seq head_dim; ops counts sattn ops after sattn-canonicalize; ms is the whole sattnc run"
