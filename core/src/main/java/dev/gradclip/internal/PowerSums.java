package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;

/**
 * The arithmetic of the norms of other p: each block's sum of {@code (|x| / max)^p} relative to its
 * tensor's largest magnitude (no overflow, no underflow), and the global sum relative to the global
 * maximum. Its error is {@link Clipping#powerBound()}'s.
 */
final class PowerSums {

    private PowerSums() {}

    /**
     * Sum of {@code (|x| / max)^p} over a block, in 8 interleaved accumulators. Each term is at most 1;
     * its error is {@link Powers}' (the division's u, raised to p, comes on top); the sum adds at most
     * gamma(521): up to 518 adds into one accumulator and 3 to fold ({@link Clipping#powerBound()}).
     * StrictMath's exp and log, so the bits are the same on every JVM.
     */
    static double block(DType type, MemorySegment segment, long from, int count, double max, double p) {
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
        int full = count & ~7;
        for (int k = 0; k < full; k += 8) {
            long i = from + k;
            a0 += Powers.pow(ScalarKernels.magnitude(type, segment, i, 1) / max, p);
            a1 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 1, 1) / max, p);
            a2 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 2, 1) / max, p);
            a3 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 3, 1) / max, p);
            a4 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 4, 1) / max, p);
            a5 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 5, 1) / max, p);
            a6 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 6, 1) / max, p);
            a7 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 7, 1) / max, p);
        }
        for (int k = full; k < count; k++) {
            a0 += Powers.pow(ScalarKernels.magnitude(type, segment, from + k, 1) / max, p);
        }
        return ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7));
    }

    /**
     * The global sum relative to the global maximum {@code global}, from each tensor's sum relative
     * to its own, in tensor order with a Neumaier sum, on one thread: the same bits for any thread
     * count. 0 when the global maximum is 0 or not finite (the norm is then that maximum).
     */
    static double combine(TensorFigures tensors, int n, double global, double p) {
        if (!(global > 0 && global <= Double.MAX_VALUE)) {
            return 0;
        }
        double sum = 0;
        double compensation = 0;
        for (int i = 0; i < n; i++) {
            double m = tensors.max[i];
            if (m == 0) {
                continue;
            }
            double term = tensors.powerSum[i] * Powers.pow(m / global, p);
            double t = sum + term;
            compensation += Math.abs(sum) >= Math.abs(term) ? (sum - t) + term : (term - t) + sum;
            sum = t;
        }
        return sum + compensation;
    }
}
