package dev.gradclip.internal;

import static dev.gradclip.internal.VectorKernels.DOUBLES;
import static dev.gradclip.internal.VectorKernels.ORDER;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * The norm loop of {@link VectorKernels}, written once. Never loaded as itself: {@link Specialized}
 * defines a hidden copy of these bytes per dtype, term and whether the block maximum is wanted, whose
 * {@code TYPE}, {@code SQUARES} and {@code MAX} are constants, so C2 compiles each copy for one case:
 * the branches on them fold away while the loop is parsed. The loop calls no helper of ours: a helper
 * C2 declines to inline (it compiles hot helpers on their own first, then finds them too big) would
 * box every vector it returns.
 */
final class NormLoop {

    private static final DType TYPE = Specialized.dtype(MethodHandles.lookup());
    private static final boolean SQUARES = Specialized.variant(MethodHandles.lookup(), 1);
    /**
     * Whether to track the largest magnitude. It costs an abs and a max per vector, a third of the
     * in-cache time, and only the report, the inf-norm and float64's scaling need it: otherwise a
     * non-finite element shows in the sum itself, which finite float32 or 16-bit squares cannot overflow.
     */
    private static final boolean MAX = Specialized.variant(MethodHandles.lookup(), 2);

    private NormLoop() {}

    /**
     * {@link Kernels#normBlock} for {@code TYPE}, {@code SQUARES} and {@code MAX}. Eight accumulators
     * of four doubles are the 32 lanes: vector j of a block goes into accumulator j mod 8. Each step
     * loads eight elements (two vectors of doubles) and the accumulators rotate two places, so the
     * body has one load site; a row of 32 elements rotates them back in place.
     */
    static void run(MemorySegment segment, long from, int count, double scale, BlockFigures out) {
        if (count > 0) {
            // One scalar read marks this compiled loop as an unsafe accessor, so that a fault in its
            // vector loads (a mapped file truncated meanwhile) is an InternalError, not a SIGBUS that
            // kills the JVM: see VectorKernels.
            segment.get(ValueLayout.JAVA_BYTE, from * TYPE.byteSize());
        }
        int full = count - count % Kernels.LANES;
        DoubleVector s0 = DoubleVector.zero(DOUBLES), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        DoubleVector max = s0; // float64's largest magnitude
        // The other types' largest magnitude, before widening, as the bits of non-negative floats: for
        // those, integer order is numeric order and every NaN is above +Infinity, so an integer max is
        // exact and propagates NaN. One vpmaxsd (1 cycle) where FloatVector.max's Java semantics (NaN,
        // -0.0) cost a blend sequence on the loop-carried chain: 1.8x the float32 block time in cache.
        IntVector bitsMax = IntVector.zero(VectorKernels.INTS_8);
        for (int k = 0; k < full; k += 8) {
            long at = from + k;
            // Load eight elements and widen them to double, exactly (but for float64's power-of-two scale).
            DoubleVector low;
            DoubleVector high;
            if (TYPE == DType.FLOAT64) {
                low = DoubleVector.fromMemorySegment(DOUBLES, segment, at * Double.BYTES, ORDER).mul(scale);
                high = DoubleVector.fromMemorySegment(DOUBLES, segment, (at + 4) * Double.BYTES, ORDER).mul(scale);
            } else {
                FloatVector floats;
                if (TYPE == DType.FLOAT32) {
                    floats = FloatVector.fromMemorySegment(VectorKernels.FLOATS_8, segment, at * Float.BYTES, ORDER);
                    if (MAX || !SQUARES) {
                        floats = floats.abs(); // on eight floats: half the work of four doubles twice
                    }
                } else {
                    IntVector bits = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.SHORTS_8, segment,
                            at * Short.BYTES, ORDER).convertShape(VectorOperators.S2I, VectorKernels.INTS_8, 0))
                            .and(0x7fff); // the magnitude: the sign bit dropped
                    if (TYPE == DType.BFLOAT16) {
                        floats = bits.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                    } else {
                        // Float16: exponent and fraction shifted into a float's fields give the value
                        // times 2^-112 (normal and subnormal alike); the all-ones exponent becomes float's.
                        floats = bits.lanewise(VectorOperators.LSHL, 13)
                                .lanewise(VectorOperators.OR, 0x7f800000, bits.compare(VectorOperators.GE, 0x7c00))
                                .reinterpretAsFloats().mul(ScalarKernels.FLOAT16_REBIAS);
                    }
                }
                if (MAX) {
                    bitsMax = bitsMax.max(floats.reinterpretAsInts()); // floats >= 0 here (abs or magnitude)
                }
                low = (DoubleVector) floats.convertShape(VectorOperators.F2D, DOUBLES, 0);
                high = (DoubleVector) floats.convertShape(VectorOperators.F2D, DOUBLES, 1);
            }
            if (TYPE == DType.FLOAT64 && (MAX || !SQUARES)) {
                low = low.abs();
                high = high.abs();
            }
            // fma(x, x, acc) rounds once, as the reference does; for widened floats x*x is exact anyway.
            DoubleVector nextLow = SQUARES ? low.fma(low, s0) : s0.add(low);
            DoubleVector nextHigh = SQUARES ? high.fma(high, s1) : s1.add(high);
            s0 = s2;
            s1 = s3;
            s2 = s4;
            s3 = s5;
            s4 = s6;
            s5 = s7;
            s6 = nextLow;
            s7 = nextHigh;
            if (TYPE == DType.FLOAT64 && MAX) {
                max = max.max(low.max(high)); // exact in any order; NaN propagates
            }
        }
        // Logical lane 4a + w lives in lane w of accumulator a. Halving: lanes 16 apart (a, a + 4),
        // then 8 (a, a + 2), then 4 (a, a + 1), then inside the vector. Fixed order, never
        // reduceLanes(ADD), whose order is unspecified.
        DoubleVector v = s0.add(s4).add(s2.add(s6)).add(s1.add(s5).add(s3.add(s7)));
        v = v.add(v.rearrange(VectorKernels.HALVING_2));
        v = v.add(v.rearrange(VectorKernels.HALVING_1));
        double fold = v.lane(0);
        ScalarKernels.tail(TYPE, SQUARES, segment, from + full, from + count, scale, out);
        out.sum = fold + out.sum;
        if (MAX) {
            double blockMax = TYPE == DType.FLOAT64 ? max.reduceLanes(VectorOperators.MAX)
                    : Float.intBitsToFloat(bitsMax.reduceLanes(VectorOperators.MAX));
            out.max = Math.max(out.max, blockMax);
        } else {
            out.max = ScalarKernels.status(out.sum);
        }
    }
}
