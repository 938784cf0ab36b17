package dev.gradclip.internal;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Vector API kernels. Loaded only by {@link KernelProvider}, after it has checked that
 * {@code jdk.incubator.vector} is present, so the static species below are safe to initialize.
 *
 * <p>Loads read half a vector of floats and widen them once to a full vector of doubles: a
 * lane-count-preserving conversion is a single instruction (vcvtps2pd), where widening a full float
 * vector would need two conversions and a lane shuffle.
 */
public final class VectorKernels implements Kernels {

    static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_PREFERRED;
    private static final int WIDTH = DOUBLES.length();
    /** Half-width floats, one per double lane; null where no such shape exists (under 128-bit). */
    static final VectorSpecies<Float> FLOATS = WIDTH < 2
            ? null
            : VectorSpecies.of(float.class, VectorShape.forBitSize(DOUBLES.vectorBitSize() / 2));

    /**
     * Four independent accumulators: a double add has a latency of 3-4 cycles, so four chains hide
     * it. The loop is bound by the float-to-double conversions, not the adds: eight accumulators
     * measured no faster, and an FMA for the multiply-add about 5 % faster in cache only, not worth
     * a check for FMA hardware (bench/RESULTS.md).
     */
    private static final int ACCUMULATORS = 4;

    private static final int LANES = ACCUMULATORS * WIDTH;

    /** The scale pass needs no widening, so it uses whole vectors of floats. */
    private static final VectorSpecies<Float> SCALE_FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int SCALE_WIDTH = SCALE_FLOATS.length();
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();

    /** {@code HALVING[h]} moves lane {@code j + h} onto lane {@code j}, for the fold of a vector. */
    private static final VectorShuffle<Double>[] HALVING = halvingShuffles();

    /** Throws UnsupportedOperationException where vectors are too narrow to beat scalar code. */
    public VectorKernels() {
        if (FLOATS == null) {
            throw new UnsupportedOperationException(
                    "preferred vectors hold " + WIDTH + " double(s), too few for the SIMD kernels");
        }
    }

    @Override
    public double blockSumOfSquares(MemorySegment floats, long from, int count) {
        long base = from * Float.BYTES;
        int full = count - count % LANES;
        DoubleVector acc0 = DoubleVector.zero(DOUBLES);
        DoubleVector acc1 = acc0;
        DoubleVector acc2 = acc0;
        DoubleVector acc3 = acc0;
        for (int k = 0; k < full; k += LANES) {
            long at = base + (long) k * Float.BYTES;
            DoubleVector x0 = widen(floats, at);
            DoubleVector x1 = widen(floats, at + WIDTH * Float.BYTES);
            DoubleVector x2 = widen(floats, at + 2 * WIDTH * Float.BYTES);
            DoubleVector x3 = widen(floats, at + 3 * WIDTH * Float.BYTES);
            // Squares of floats are exact in double, so mul-then-add rounds exactly as the reference does.
            acc0 = acc0.add(x0.mul(x0));
            acc1 = acc1.add(x1.mul(x1));
            acc2 = acc2.add(x2.mul(x2));
            acc3 = acc3.add(x3.mul(x3));
        }
        // Halving over the LANES logical lanes: first across accumulators (lanes 2W apart, then W),
        // then inside the vector. Fixed order, never reduceLanes(ADD), whose order is unspecified.
        DoubleVector v = acc0.add(acc2).add(acc1.add(acc3));
        for (int h = WIDTH / 2; h >= 1; h /= 2) {
            v = v.add(v.rearrange(HALVING[h]));
        }
        return v.lane(0) + ScalarKernels.tailSumOfSquares(floats, from + full, from + count);
    }

    /**
     * Full-width float multiplies. Scaling in double instead (widen, multiply, narrow) made the clip
     * of GPT-2-small 20 % slower on AVX2, bound by the conversions (bench/RESULTS.md).
     */
    @Override
    public void scaleBlock(MemorySegment floats, long from, int count, float c) {
        long base = from * Float.BYTES;
        int full = count - count % SCALE_WIDTH;
        for (int k = 0; k < full; k += SCALE_WIDTH) {
            long at = base + (long) k * Float.BYTES;
            FloatVector.fromMemorySegment(SCALE_FLOATS, floats, at, ORDER).mul(c).intoMemorySegment(floats, at, ORDER);
        }
        // Inline rather than a call to a shared scalar helper: that call made the in-cache clip 1.6x
        // slower (760 -> 1270 ns at 4K floats), as it changed how C2 compiled the vector loop.
        for (long i = from + full, end = from + count; i < end; i++) {
            floats.setAtIndex(ScalarKernels.FLOAT, i, floats.getAtIndex(ScalarKernels.FLOAT, i) * c);
        }
    }

    private static DoubleVector widen(MemorySegment floats, long byteOffset) {
        return (DoubleVector) FloatVector.fromMemorySegment(FLOATS, floats, byteOffset, ORDER)
                .convertShape(VectorOperators.F2D, DOUBLES, 0);
    }

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Double>[] halvingShuffles() {
        VectorShuffle<Double>[] shuffles = new VectorShuffle[WIDTH];
        for (int h = WIDTH / 2; h >= 1; h /= 2) {
            int step = h;
            shuffles[h] = VectorShuffle.fromOp(DOUBLES, j -> (j + step) % WIDTH);
        }
        return shuffles;
    }

    @Override
    public int logicalLanes() {
        return LANES;
    }

    @Override
    public String description() {
        return "vector (" + DOUBLES.vectorBitSize() + "-bit doubles, " + LANES + " lanes)";
    }
}
