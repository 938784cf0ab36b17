package dev.gradclip.internal;

import java.util.function.DoubleSupplier;

/**
 * Two ways of doing the same work, timed against each other once at start-up, where a choice depends
 * on whether the CPU does something in hardware ({@link KernelProvider#hardwareFma()}, the scalar
 * kernels' float16 conversions). Each loop runs five times, interleaved with the other, and the
 * fastest trial of each counts, so a stray pause in one trial cannot decide. The choices it serves
 * are between an instruction and dozens of operations, far apart whether the loops are interpreted or
 * compiled.
 */
final class StartupTiming {

    /** What the loops return, kept so that no loop can be dropped as dead code. */
    private static volatile double sink;

    private StartupTiming() {}

    /** The fastest of five trials of each loop, in nanoseconds: {@code {first, second}}. */
    static long[] bestOfFive(DoubleSupplier first, DoubleSupplier second) {
        long[] best = {Long.MAX_VALUE, Long.MAX_VALUE};
        double results = 0;
        for (int trial = 0; trial < 5; trial++) {
            long t0 = System.nanoTime();
            results += first.getAsDouble();
            long t1 = System.nanoTime();
            results += second.getAsDouble();
            long t2 = System.nanoTime();
            best[0] = Math.min(best[0], t1 - t0);
            best[1] = Math.min(best[1], t2 - t1);
        }
        sink = results;
        return best;
    }
}
