#!/usr/bin/env bash
# Builds and runs the C baseline (clip_loop.c) with the system gcc, at 1 and 2 OpenMP threads; prints medians.
# `run.sh lib` builds it as bench/target/libclip_loop.so instead, for `Interleaved versus`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
flags=(-O3 -march=native -mprefer-vector-width=256 -ffast-math -fopenmp)
if [[ "${1:-}" == lib ]]; then
  # The loops as a shared library for `Interleaved versus`: prints the library's path. Not -ffast-math,
  # whose crtfastmath.o would set flush-to-zero in the JVM that loads the library; the flags that let gcc
  # vectorize the sums (reassociation) are what it needs of it.
  mkdir -p "$here/../target"
  gcc -O3 -march=native -mprefer-vector-width=256 -fopenmp -fno-math-errno -fassociative-math -fno-signed-zeros \
    -fno-trapping-math -shared -fPIC -DCLIP_LIBRARY -o "$here/../target/libclip_loop.so" "$here/clip_loop.c" -lm
  echo "$here/../target/libclip_loop.so"
  exit 0
fi
out=$(mktemp -d)
gcc "${flags[@]}" -o "$out/clip_loop" "$here/clip_loop.c" -lm
for threads in 1 2; do
  echo "OMP_NUM_THREADS=$threads"
  OMP_NUM_THREADS=$threads OMP_PROC_BIND=true "$out/clip_loop"
done
