#!/usr/bin/env bash
# Installs what sattn needs to build and test, when missing. Idempotent:
# packages already installed are not touched, and nothing runs apt when all
# are present. Debian's packages only. `deps.sh bench` also installs the
# dense baselines the benchmarks compare with (OpenBLAS, oneDNN).
set -euo pipefail

packages=(
  cmake ninja-build gcc make python3
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools
  clang-22 libclang-rt-22-dev valgrind pkgconf python3-numpy
)
if [ "${1:-}" = bench ]; then
  packages+=(libopenblas-dev libdnnl-dev python3-venv)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The CUDA toolkit is optional: found when present, never installed here.
for d in "${CUDA_HOME:-}" /usr/local/cuda; do
  if [ -n "$d" ] && [ -x "$d/bin/ptxas" ]; then
    echo "deps: CUDA toolkit at $d"
    break
  fi
done
exit 0
