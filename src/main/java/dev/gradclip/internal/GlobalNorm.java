package dev.gradclip.internal;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.RandomAccess;

/**
 * Global-norm clipping over a list of float32 segments with given kernels: validation, the
 * compensated sum over blocks, the coefficient and the scale pass. {@link dev.gradclip.GradClip}
 * calls it with the kernels of this JVM; tests and benchmarks call it with either.
 */
public final class GlobalNorm {

    /** Added to the norm before dividing, as torch does, so a zero norm never divides by zero. */
    public static final double EPS = 1e-6;

    private static final double UNIT_ROUNDOFF = 0x1p-53;

    private GlobalNorm() {}

    /** The L2 norm over every element of every segment. */
    public static double totalNorm(Kernels kernels, List<MemorySegment> grads) {
        grads = randomAccess(grads);
        SegmentChecks.checkReadable(grads);
        return Math.sqrt(sumOfSquares(kernels, grads));
    }

    /**
     * Scales every element by {@link #clipCoefficient}, rounded once to float32, when the norm
     * exceeds {@code maxNorm} (or is NaN), and returns the norm from before.
     */
    public static double clipGradNorm(Kernels kernels, List<MemorySegment> grads, double maxNorm) {
        SegmentChecks.checkMaxNorm(maxNorm);
        grads = randomAccess(grads);
        SegmentChecks.checkReadable(grads);
        double norm = Math.sqrt(sumOfSquares(kernels, grads));
        double c = coefficient(norm, maxNorm);
        if (c != 1.0) {
            SegmentChecks.checkWritable(grads);
            scale(kernels, grads, (float) c);
        }
        return norm;
    }

    /**
     * The factor {@code clipGradNorm} applies: {@code maxNorm / (norm + EPS)} when
     * {@code norm > maxNorm}, else 1. As in torch, a NaN norm gives NaN and an infinite norm gives 0,
     * unless {@code maxNorm} is +Infinity, which never clips.
     */
    public static double clipCoefficient(double norm, double maxNorm) {
        SegmentChecks.checkMaxNorm(maxNorm);
        return coefficient(norm, maxNorm);
    }

    /** {@link #clipCoefficient} for a {@code maxNorm} already checked. */
    private static double coefficient(double norm, double maxNorm) {
        boolean clip = maxNorm != Double.POSITIVE_INFINITY && !(norm <= maxNorm);
        return clip ? maxNorm / (norm + EPS) : 1.0;
    }

    /**
     * The sum of squares of all elements. Block sums enter a Neumaier (improved Kahan-Babuska) sum
     * in list order, so the result is the same on every run, and would be for any split of the
     * blocks across threads that adds them back in this order.
     *
     * <p>Non-finite elements: a NaN element makes the sum NaN, an infinite one (and no NaN) makes it
     * +Infinity. The compensation term turns NaN once the sum is infinite (inf - inf), so only a
     * finite sum is compensated.
     */
    static double sumOfSquares(Kernels kernels, List<MemorySegment> grads) {
        double sum = 0;
        double compensation = 0;
        for (int i = 0, n = grads.size(); i < n; i++) {
            MemorySegment segment = grads.get(i);
            long count = segment.byteSize() / Float.BYTES;
            for (long from = 0; from < count; from += Kernels.BLOCK) {
                double block = kernels.blockSumOfSquares(segment, from, (int) Math.min(Kernels.BLOCK, count - from));
                double t = sum + block;
                // Both terms are >= 0, so the larger value is the larger magnitude.
                compensation += sum >= block ? (sum - t) + block : (block - t) + sum;
                sum = t;
            }
        }
        return Double.isFinite(sum) ? sum + compensation : sum;
    }

    static void scale(Kernels kernels, List<MemorySegment> grads, float c) {
        for (int i = 0, n = grads.size(); i < n; i++) {
            MemorySegment segment = grads.get(i);
            long count = segment.byteSize() / Float.BYTES;
            for (long from = 0; from < count; from += Kernels.BLOCK) {
                kernels.scaleBlock(segment, from, (int) Math.min(Kernels.BLOCK, count - from), c);
            }
        }
    }

    /**
     * The relative error bound of {@link #totalNorm} for kernels with {@code lanes} logical lanes,
     * for any finite float32 input of any length (below 2^60 elements).
     *
     * <p>Why: a float's square is exact in double and no sum of float32 squares can overflow or
     * underflow in double (at most 2^256 each, at least 2^-298). Inside a block an element's square
     * passes through at most {@code BLOCK/lanes - 1} lane adds, {@code log2(lanes)} fold adds and the
     * final tail add ({@code < lanes} tail elements take fewer), so with nonnegative terms a block's
     * relative error is at most {@code gamma(k) = k·u / (1 - k·u)} for {@code k = BLOCK/lanes +
     * log2(lanes)} (or {@code lanes}, if larger), u = 2^-53. The Neumaier sum of the blocks adds at most {@code 2u + O(N·u²)}
     * (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §4.3), and adding the
     * compensation term rounds once more (u). The square root halves the relative error of the sum
     * and rounds once (u). The bound below adds one u for the O(N·u²) term, which is below u for
     * N < 2^52 blocks.
     *
     * <p>For 32 lanes (512-bit vectors, and the scalar fallback) this is about 7.7e-15; for 16 lanes
     * (256-bit) 1.5e-14; for 8 lanes (128-bit) 2.9e-14: within the 1e-13 that gradclip promises.
     */
    public static double relativeErrorBound(int lanes) {
        int k = Math.max(Kernels.BLOCK / lanes + Integer.numberOfTrailingZeros(lanes), lanes);
        double blockError = k * UNIT_ROUNDOFF / (1 - k * UNIT_ROUNDOFF);
        double sumError = blockError + 2 * UNIT_ROUNDOFF + UNIT_ROUNDOFF + UNIT_ROUNDOFF;
        return sumError / 2 + UNIT_ROUNDOFF;
    }

    /** Indexed access must be O(1), and must not allocate an iterator on the hot path. */
    private static List<MemorySegment> randomAccess(List<MemorySegment> grads) {
        return grads == null || grads instanceof RandomAccess ? grads : new ArrayList<>(grads);
    }
}
