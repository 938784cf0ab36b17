package dev.gradclip.internal;

import static dev.gradclip.internal.VectorKernels.DOUBLES;
import static dev.gradclip.internal.VectorKernels.FLOATS_4;
import static dev.gradclip.internal.VectorKernels.INTS_4;
import static dev.gradclip.internal.VectorKernels.ORDER;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.nio.ByteOrder;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * The norm loop of {@link VectorKernels}, written once. Never loaded as itself: {@link Specialized}
 * defines a hidden copy of these bytes per dtype, term, whether the block maximum is wanted and piece
 * length, whose {@code TYPE}, {@code SQUARES}, {@code MAX} and {@code STEPS} are constants, so C2
 * compiles each copy for one case: the branches on them fold away while the loop is parsed. The loop calls no helper of ours: a helper
 * C2 declines to inline (it compiles hot helpers on their own first, then finds them too big) would
 * box every vector it returns.
 */
final class NormLoop {

    private static final DType TYPE = Specialized.dtype(MethodHandles.lookup());
    private static final boolean SQUARES = Specialized.variant(MethodHandles.lookup(), 1);
    /**
     * Whether to track the largest magnitude. It costs an and and a max per step (float64: an abs, a
     * compare and a blend), up to a third of the in-cache time, and only the report, the inf-norm and
     * float64's scaling need it: otherwise a
     * non-finite element shows in the sum itself, which finite float32 or 16-bit squares cannot overflow.
     */
    private static final boolean MAX = Specialized.variant(MethodHandles.lookup(), 2);

    private NormLoop() {}

    /**
     * Whether the low half of an int read from memory is the first of its two 16-bit elements (on a
     * little-endian CPU): the 16-bit types are read as pairs, 8 elements per vector of 4 ints.
     */
    private static final boolean LOW_HALF_FIRST = ORDER == ByteOrder.LITTLE_ENDIAN;

    /**
     * Whether a float16 block is first widened into a per-thread scratch by the JDK's
     * conversions, which C2's SuperWord compiles into vcvtph2ps where the CPU has it (F16C): 0.05 ns
     * per element in cache, against the bit operations' compare, blend and rebias multiply in the loop
     * (2.4x the float32 block time). The loop then reads floats, as for float32.
     */
    private static final boolean WIDENED = TYPE == DType.FLOAT16 && ScalarKernels.JDK_FLOAT16;

    /**
     * Steps per piece (8 elements each): the step loop runs inside a loop over pieces of this many
     * steps, the accumulators carried, so the bits do not depend on it. {@link VectorKernels} picks
     * the copy by block length ({@link VectorKernels#SHORT_STEPS}).
     */
    private static final int STEPS = Specialized.steps(MethodHandles.lookup(), 3);

    /** Whether this copy reads its type as pairs of 16-bit halves: bfloat16, and float16 not widened ahead. */
    private static final boolean PAIRS = TYPE == DType.BFLOAT16 || (TYPE == DType.FLOAT16 && !WIDENED);

    /**
     * {@link Kernels#normBlock} for {@code TYPE}, {@code SQUARES} and {@code MAX}. Eight accumulators
     * of four doubles hold the 32 lanes. Each step reads eight elements and widens them into two
     * vectors of doubles, which go into the accumulators of their lanes; the accumulators then rotate
     * two places, so the body has one load site, and a row of 32 elements brings them back in place.
     *
     * <p>Every vector of floats widened here is 128 bits, converted by one instruction: float32 and
     * widened float16 load 4 floats at a time, the pairs 4 ints whose halves become the two vectors.
     * A 256-bit vector would need its upper half extracted before the second conversion, which made
     * the loop 1.3-1.6x slower in cache and its GPT-2-small pass 9-24 % slower for float32 and bfloat16 on
     * Zen 1 (docs/performance.md, section "Half-width loads").
     *
     * <p>Float32, float64 and float16 widened ahead ({@link #WIDENED}) come in element order: step
     * vector i holds lanes 4i..4i+3 of its quarter row. Bfloat16 (and float16 where it is not widened
     * ahead) is read as pairs, 4 ints of two elements each, and widening a half of each int is a mask
     * or a shift, with no 16-to-32-bit conversion; vector 0 holds the pairs' first elements (quarter-row
     * lanes 0, 2, 4, 6) and vector 1 the second ones (lanes 1, 3, 5, 7). Every lane still sums its own
     * elements in order, in an accumulator of its own; only the fold at the end of the block takes
     * the lanes from other places, and it pairs the same lanes.
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
        // Each copy makes only the maximum vector its type uses (null in the others): an unused vector is
        // still code that C2 parses and inlines into this one large method.
        // Float64's largest magnitude, as bits.
        LongVector longMax = TYPE == DType.FLOAT64 && MAX ? LongVector.zero(VectorKernels.LONGS) : null;
        // The other types' largest magnitude, before widening, as the bits of non-negative floats: for
        // those, integer order is numeric order and every NaN is above +Infinity, so an integer max is
        // exact and propagates NaN. One vpmaxsd (1 cycle) where FloatVector.max's Java semantics (NaN,
        // -0.0) cost a blend sequence on the loop-carried chain: 1.8x the float32 block time in cache.
        IntVector bitsMax = TYPE != DType.FLOAT64 && TYPE != DType.BFLOAT16 && MAX
                ? IntVector.zero(VectorKernels.INTS_4) : null;
        // Bfloat16's, as 16-bit magnitudes (see the loop).
        ShortVector halvesMax = TYPE == DType.BFLOAT16 && MAX ? ShortVector.zero(VectorKernels.SHORTS_8) : null;
        float[] widened = null;
        if (WIDENED) {
            VectorKernels.Float16Scratch scratch = VectorKernels.FLOAT16_SCRATCH.get();
            widened = scratch.widened;
            // As in MapLoop: native segments are read in place, heap ones copied out first, so that
            // each loop sees one kind of segment and SuperWord keeps vectorizing it.
            if (segment.isNative()) {
                for (int k = 0; k < full; k++) {
                    widened[k] = Float.float16ToFloat(segment.getAtIndex(ScalarKernels.SHORT, from + k));
                }
            } else {
                short[] halves = scratch.halves;
                MemorySegment.copy(segment, ScalarKernels.SHORT, from * Short.BYTES, halves, 0, full);
                for (int k = 0; k < full; k++) {
                    widened[k] = Float.float16ToFloat(halves[k]);
                }
            }
        }
        for (int piece = 0; piece < full; piece += 8 * STEPS) {
            int end = Math.min(full, piece + 8 * STEPS);
            for (int k = piece; k < end; k += 8) {
                long at = from + k;
                // Load eight elements and widen them to two vectors of doubles, exactly (but for float64's
                // power-of-two scale).
                DoubleVector v0;
                DoubleVector v1;
                if (TYPE == DType.FLOAT64) {
                    v0 = DoubleVector.fromMemorySegment(DOUBLES, segment, at * Double.BYTES, ORDER).mul(scale);
                    v1 = DoubleVector.fromMemorySegment(DOUBLES, segment, (at + 4) * Double.BYTES, ORDER).mul(scale);
                    if (MAX || !SQUARES) {
                        v0 = v0.abs();
                        v1 = v1.abs();
                    }
                    if (MAX) {
                        // As below for the other types: the bits of non-negative doubles, in integer order,
                        // by compare and blend (AVX2 has vpcmpgtq but no 64-bit max instruction).
                        LongVector a = v0.reinterpretAsLongs();
                        LongVector b = v1.reinterpretAsLongs();
                        a = a.blend(b, a.lt(b));
                        longMax = longMax.blend(a, longMax.lt(a));
                    }
                } else {
                    // Four floats each: elements 0-3 and 4-7, or the pairs' first and second elements.
                    FloatVector first;
                    FloatVector second;
                    if (!PAIRS) {
                        if (TYPE == DType.FLOAT32) {
                            first = FloatVector.fromMemorySegment(FLOATS_4, segment, at * Float.BYTES, ORDER);
                            second = FloatVector.fromMemorySegment(FLOATS_4, segment, (at + 4) * Float.BYTES, ORDER);
                        } else {
                            first = FloatVector.fromArray(FLOATS_4, widened, k);
                            second = FloatVector.fromArray(FLOATS_4, widened, k + 4);
                        }
                        if (!SQUARES) {
                            first = first.abs();
                            second = second.abs();
                        }
                    } else {
                        IntVector pairs = IntVector.fromMemorySegment(INTS_4, segment, at * Short.BYTES, ORDER);
                        // Each half's magnitude (the sign dropped), moved to where a float keeps it.
                        IntVector low;
                        IntVector high;
                        if (TYPE == DType.BFLOAT16) {
                            low = pairs.lanewise(VectorOperators.LSHL, 16);
                            high = pairs.and(0xffff0000);
                            if (!SQUARES) {
                                low = low.and(0x7fffffff);
                                high = high.and(0x7fffffff);
                            }
                            if (MAX) {
                                // Both halves at once, as 8 shorts: a bfloat16's magnitude bits are in
                                // numeric order as 16-bit integers too (NaN on top). One and, one vpmaxsw.
                                halvesMax = halvesMax.max(pairs.and(0x7fff7fff).reinterpretAsShorts());
                            }
                        } else {
                            // Float16: exponent and fraction shifted into a float's fields give the value
                            // times 2^-112 (normal and subnormal alike); the all-ones exponent becomes float's.
                            low = pairs.and(0x7fff).lanewise(VectorOperators.LSHL, 13);
                            high = pairs.lanewise(VectorOperators.LSHR, 3).and(0x7fff << 13);
                            low = low.lanewise(VectorOperators.OR, 0x7f800000, low.compare(VectorOperators.GE, 0x7c00 << 13));
                            high = high.lanewise(VectorOperators.OR, 0x7f800000, high.compare(VectorOperators.GE, 0x7c00 << 13));
                        }
                        first = (LOW_HALF_FIRST ? low : high).reinterpretAsFloats();
                        second = (LOW_HALF_FIRST ? high : low).reinterpretAsFloats();
                        if (TYPE == DType.FLOAT16) {
                            first = first.mul(ScalarKernels.FLOAT16_REBIAS);
                            second = second.mul(ScalarKernels.FLOAT16_REBIAS);
                        }
                    }
                    if (MAX && TYPE != DType.BFLOAT16) {
                        // The magnitudes' bits (the pairs' halves are magnitudes already: the and changes nothing there).
                        bitsMax = bitsMax.max(first.reinterpretAsInts().and(0x7fffffff)
                                .max(second.reinterpretAsInts().and(0x7fffffff)));
                    }
                    v0 = (DoubleVector) first.convertShape(VectorOperators.F2D, DOUBLES, 0);
                    v1 = (DoubleVector) second.convertShape(VectorOperators.F2D, DOUBLES, 0);
                }
                // fma(x, x, acc) rounds once, as the reference does; for widened floats x*x is exact anyway.
                DoubleVector next0 = SQUARES ? v0.fma(v0, s0) : s0.add(v0);
                DoubleVector next1 = SQUARES ? v1.fma(v1, s1) : s1.add(v1);
                s0 = s2;
                s1 = s3;
                s2 = s4;
                s3 = s5;
                s4 = s6;
                s5 = s7;
                s6 = next0;
                s7 = next1;
            }
        }
        // Halving: lanes 16 apart, then 8, then 4, then inside the vector. Fixed order, never
        // reduceLanes(ADD), whose order is unspecified.
        double fold;
        if (!PAIRS) {
            // Lane 4a + w lives in lane w of accumulator a: accumulators a and a + 4 (16 apart), then
            // a and a + 2 (8), a and a + 1 (4), then lanes 2 and 1 apart.
            DoubleVector v = s0.add(s4).add(s2.add(s6)).add(s1.add(s5).add(s3.add(s7)));
            v = v.add(v.rearrange(VectorKernels.HALVING_2));
            v = v.add(v.rearrange(VectorKernels.HALVING_1));
            fold = v.lane(0);
        } else {
            // Pairs: accumulator 2q holds the even lanes of quarter row q (lane 8q + 2p in lane p), and
            // 2q + 1 its odd lanes. 16 apart: s_a + s_(a+4); 8 apart: s0 + s2 and s1 + s3, which leaves
            // lane l of the 8-lane fold in lane l/2 of "even" or "odd"; 4 apart: lanes p and p + 2 of
            // each; then the canonical 2 apart (l and l + 2: the two sums of "even", then of "odd") and
            // 1 apart.
            DoubleVector even = s0.add(s4).add(s2.add(s6));
            DoubleVector odd = s1.add(s5).add(s3.add(s7));
            even = even.add(even.rearrange(VectorKernels.HALVING_2));
            odd = odd.add(odd.rearrange(VectorKernels.HALVING_2));
            fold = (even.lane(0) + even.lane(1)) + (odd.lane(0) + odd.lane(1));
        }
        ScalarKernels.tail(TYPE, SQUARES, segment, from + full, from + count, scale, out);
        out.sum = fold + out.sum;
        if (MAX) {
            double blockMax = TYPE == DType.FLOAT64 ? longMax.reinterpretAsDoubles().reduceLanes(VectorOperators.MAX)
                    : TYPE == DType.BFLOAT16 ? Float.intBitsToFloat(halvesMax.reduceLanes(VectorOperators.MAX) << 16)
                    : Float.intBitsToFloat(bitsMax.reduceLanes(VectorOperators.MAX));
            out.max = Math.max(out.max, blockMax);
        } else {
            out.max = ScalarKernels.status(out.sum);
        }
    }
}
