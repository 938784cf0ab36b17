// The C baseline: a plain C clip loop at memory bandwidth over GPT-2-small-sized float32 gradients
// (124,439,808 floats), split over OMP_NUM_THREADS threads with OpenMP. The norm pass reads 4 bytes per
// element, the scale pass reads and writes 8: 12 bytes per element for a clip that scales. The
// streaming limit does the same passes without arithmetic to speak of (a float sum, a multiply by 1).
// Build and run: bench/c/run.sh   (gcc -O3 -march=native -ffast-math -fopenmp, 256-bit vectors; runs
// the loops at 1 and 2 threads). Prints medians of RUNS runs, in ms and GB/s. `bench/c/run.sh lib` builds
// the same loops as a shared library instead, for Interleaved's "versus" mode (clip_loop below).
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double norm(const float *g, size_t n) {
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < n; i++) sum += (double)g[i] * g[i];
    return sqrt(sum);
}

static void scale(float *g, size_t n, float c) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= c;
}

// The clip as one call, for bench/c/run.sh lib: Interleaved's "versus" mode loads the shared library
// and runs this beside gradclip in the same JVM, round by round, at `threads` OpenMP threads.
double clip_loop(float *g, size_t n, double max_norm, int threads) {
    omp_set_num_threads(threads);
    double total = norm(g, n);
    float c = (float)(max_norm / (total + 1e-6));
    if (total > max_norm) scale(g, n, c);
    return total;
}

#ifndef CLIP_LIBRARY // the stand-alone program: timing, the streaming limit and main
enum { RUNS = 11 };
static const size_t N = 124439808;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static float stream_read(const float *g, size_t n) {
    float sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < n; i++) sum += g[i];
    return sum;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t) {
    qsort(t, RUNS, sizeof *t, by_value);
    return t[RUNS / 2];
}

int main(void) {
    float *g = aligned_alloc(64, N * sizeof(float));
    if (!g) return 1;
    unsigned x = 1;
    for (size_t i = 0; i < N; i++) { x = x * 1664525u + 1013904223u; g[i] = (x >> 8) * 0x1p-23f - 1.0f; }
    double sink = 0, norm_ms[RUNS], clip_ms[RUNS], limit_ms[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ms();
        sink += stream_read(g, N);
        scale(g, N, 1.0f);
        limit_ms[r] = now_ms() - t0;
    }
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ms();
        sink += norm(g, N);
        norm_ms[r] = now_ms() - t0;
    }
    double max_norm = norm(g, N) * (1 - 0x1p-22);
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ms();
        double n = clip_loop(g, N, max_norm, omp_get_max_threads());
        clip_ms[r] = now_ms() - t0;
        float c = (float)(max_norm / (n + 1e-6));
        max_norm = n * c * (1 - 0x1p-22);  // every run scales; values shrink by < 1e-6 a run
        sink += n;
    }
    double nm = median(norm_ms), cm = median(clip_ms), lm = median(limit_ms);
    printf("c-loop norm: %.1f ms median of %d, %.2f GB/s\n", nm, RUNS, 4.0 * N / nm / 1e6);
    printf("c-loop clip: %.1f ms median of %d, %.2f GB/s\n", cm, RUNS, 12.0 * N / cm / 1e6);
    printf("c-stream limit (read, then read+write): %.1f ms median of %d, %.2f GB/s\n", lm, RUNS, 12.0 * N / lm / 1e6);
    return sink == 0;
}
#endif
