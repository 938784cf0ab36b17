#!/usr/bin/env bash
# Builds and runs the C baseline (clip_loop.c) with the system gcc, at 1 and 2 OpenMP threads; prints medians.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
gcc -O3 -march=native -mprefer-vector-width=256 -ffast-math -fopenmp -o "$out/clip_loop" "$here/clip_loop.c" -lm
for threads in 1 2; do
  echo "OMP_NUM_THREADS=$threads"
  OMP_NUM_THREADS=$threads OMP_PROC_BIND=true "$out/clip_loop"
done
