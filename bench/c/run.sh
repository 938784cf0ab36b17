#!/usr/bin/env bash
# Builds and runs the C baseline (clip_loop.c) with the system gcc; prints medians.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
gcc -O3 -march=native -ffast-math -o "$out/clip_loop" "$here/clip_loop.c" -lm
"$out/clip_loop"
