package dev.gradclip.internal;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The scalar reference kernels: the plain-Java statement of the summation order that
 * {@link Kernels} defines, and the fallback when the Vector API is not available.
 *
 * <p>With the same lane count as {@link VectorKernels} it returns bit-identical block sums, which
 * is what the tests check. The fallback uses {@link #DEFAULT_LANES}, the lane count of the vector
 * kernels on 512-bit hardware, so there the two paths agree to the bit.
 */
public final class ScalarKernels implements Kernels {

    /** The fallback's lane count: four accumulators of eight doubles, as on AVX-512. */
    public static final int DEFAULT_LANES = 32;

    /** The lane counts for which {@link GlobalNorm#relativeErrorBound(int)} stays within 1e-13. */
    public static final int MIN_LANES = 4;
    public static final int MAX_LANES = 1024;

    /** Native byte order, any alignment: heap, native and mapped segments all qualify. */
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final int lanes;

    public ScalarKernels() {
        this(DEFAULT_LANES);
    }

    /** A reference with another lane count, to reproduce a vector kernel of that width exactly. */
    public ScalarKernels(int lanes) {
        if (lanes < MIN_LANES || lanes > MAX_LANES || Integer.bitCount(lanes) != 1) {
            throw new IllegalArgumentException(
                    "lanes must be a power of two from " + MIN_LANES + " to " + MAX_LANES + ", was " + lanes);
        }
        this.lanes = lanes;
    }

    @Override
    public double blockSumOfSquares(MemorySegment floats, long from, int count) {
        int full = count - count % lanes;
        return fold(floats, from, full, 0, 1) + tailSumOfSquares(floats, from + full, from + count);
    }

    /** The tail of a block: squares of elements {@code from} to {@code end}, added in order from zero. */
    static double tailSumOfSquares(MemorySegment floats, long from, long end) {
        double tail = 0;
        for (long i = from; i < end; i++) {
            double x = floats.getAtIndex(FLOAT, i);
            tail += x * x;
        }
        return tail;
    }

    /**
     * Lane {@code lane} after the halving steps down to {@code step}: at each step lane {@code j}
     * takes lane {@code j + step}, so the value is the fold of the two lanes one step wider.
     * Recursing instead of storing the lane sums keeps the fallback allocation-free.
     */
    private double fold(MemorySegment floats, long from, int full, int lane, int step) {
        if (step == lanes) {
            return laneSum(floats, from, full, lane);
        }
        return fold(floats, from, full, lane, 2 * step) + fold(floats, from, full, lane + step, 2 * step);
    }

    /** Squares of elements {@code lane, lane + lanes, ...} below {@code full}, added in order from zero. */
    private double laneSum(MemorySegment floats, long from, int full, int lane) {
        double sum = 0;
        for (int k = lane; k < full; k += lanes) {
            double x = floats.getAtIndex(FLOAT, from + k);
            // A float's square is exact in double (24 + 24 bits < 53), so only the add rounds.
            sum += x * x;
        }
        return sum;
    }

    @Override
    public void scaleBlock(MemorySegment floats, long from, int count, float c) {
        for (long i = from, end = from + count; i < end; i++) {
            floats.setAtIndex(FLOAT, i, floats.getAtIndex(FLOAT, i) * c);
        }
    }

    @Override
    public int logicalLanes() {
        return lanes;
    }

    @Override
    public String description() {
        return "scalar (" + lanes + " lanes)";
    }
}
