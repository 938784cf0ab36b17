package dev.gradclip.internal;

import static dev.gradclip.internal.VectorKernels.DOUBLES;
import static dev.gradclip.internal.VectorKernels.ORDER;
import static dev.gradclip.internal.VectorKernels.WIDTH;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * The norm loop of {@link VectorKernels}, written once. Never loaded as itself: {@link Specialized}
 * defines a hidden copy of these bytes per dtype and term, whose {@code TYPE} and {@code SQUARES}
 * are constants, so C2 compiles each copy for one dtype: the branches on them fold away while the
 * loop is parsed. The loop calls no helper of ours: a helper C2 declines to inline (it compiles hot
 * helpers on their own first, then finds them too big) would box every vector it returns.
 */
final class NormLoop {

    private static final DType TYPE = Specialized.dtype(MethodHandles.lookup());
    private static final boolean SQUARES = Specialized.variant(MethodHandles.lookup());

    private NormLoop() {}

    /**
     * {@link Kernels#normBlock} for {@code TYPE} and {@code SQUARES}. Eight accumulators of four
     * doubles are the 32 lanes: vector j of a block goes into accumulator j mod 8. The accumulators
     * rotate one place per vector, so the body has one load site and C2's unrolling turns the
     * rotation into register renaming; a row of 32 elements rotates them back in place.
     */
    static void run(MemorySegment segment, long from, int count, double scale, BlockFigures out) {
        int full = count - count % Kernels.LANES;
        DoubleVector s0 = DoubleVector.zero(DOUBLES), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        DoubleVector m0 = s0, m1 = s0;
        for (int k = 0; k < full; k += WIDTH) {
            long at = from + k;
            // Load and widen four elements to |x * scale| in double: exact but for float64's scale.
            DoubleVector x;
            if (TYPE == DType.FLOAT32) {
                x = (DoubleVector) FloatVector.fromMemorySegment(VectorKernels.FLOATS_4, segment, at * Float.BYTES, ORDER)
                        .convertShape(VectorOperators.F2D, DOUBLES, 0);
            } else if (TYPE == DType.FLOAT64) {
                x = DoubleVector.fromMemorySegment(DOUBLES, segment, at * Double.BYTES, ORDER).mul(scale);
            } else {
                IntVector bits = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.SHORTS_4, segment,
                        at * Short.BYTES, ORDER).convertShape(VectorOperators.S2I, VectorKernels.INTS_4, 0)).and(0x7fff);
                FloatVector floats;
                if (TYPE == DType.BFLOAT16) {
                    floats = bits.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                } else {
                    // Float16: exponent and fraction shifted into a float's fields give the value
                    // times 2^-112 (normal and subnormal alike); the all-ones exponent becomes float's.
                    floats = bits.lanewise(VectorOperators.LSHL, 13)
                            .lanewise(VectorOperators.OR, 0x7f800000, bits.compare(VectorOperators.GE, 0x7c00))
                            .reinterpretAsFloats().mul(VectorKernels.FLOAT16_REBIAS);
                }
                x = (DoubleVector) floats.convertShape(VectorOperators.F2D, DOUBLES, 0);
            }
            x = x.abs();
            // fma(x, x, acc) rounds once, as the reference does; for widened floats x*x is exact anyway.
            DoubleVector next = SQUARES ? x.fma(x, s0) : s0.add(x);
            s0 = s1;
            s1 = s2;
            s2 = s3;
            s3 = s4;
            s4 = s5;
            s5 = s6;
            s6 = s7;
            s7 = next;
            DoubleVector m = m1.max(x); // max is exact: any order, two chains for latency
            m1 = m0;
            m0 = m;
        }
        // Logical lane 4a + w lives in lane w of accumulator a. Halving: lanes 16 apart (a, a + 4),
        // then 8 (a, a + 2), then 4 (a, a + 1), then inside the vector. Fixed order, never
        // reduceLanes(ADD), whose order is unspecified.
        DoubleVector v = s0.add(s4).add(s2.add(s6)).add(s1.add(s5).add(s3.add(s7)));
        v = v.add(v.rearrange(VectorKernels.HALVING_2));
        v = v.add(v.rearrange(VectorKernels.HALVING_1));
        double fold = v.lane(0);
        double blockMax = m0.max(m1).reduceLanes(VectorOperators.MAX);
        ScalarKernels.tail(TYPE, SQUARES, segment, from + full, from + count, scale, out);
        out.sum = fold + out.sum;
        out.max = Math.max(out.max, blockMax);
    }
}
