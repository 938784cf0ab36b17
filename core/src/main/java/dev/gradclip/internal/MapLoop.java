package dev.gradclip.internal;

import static dev.gradclip.internal.VectorKernels.ORDER;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * The map loop of {@link VectorKernels} (scale or clamp), written once. Never loaded as itself:
 * {@link Specialized} defines a hidden copy per dtype, operation and piece length, whose {@code TYPE},
 * {@code CLAMP} and {@code STEPS} are constants. As in {@link NormLoop}, the loop calls no helper of ours.
 */
final class MapLoop {

    private static final DType TYPE = Specialized.dtype(MethodHandles.lookup());
    private static final boolean CLAMP = Specialized.variant(MethodHandles.lookup(), 1);

    /** Steps per piece, as in {@link NormLoop}: each vector loop runs inside a loop over pieces of this many steps. */
    private static final int STEPS = Specialized.steps(MethodHandles.lookup(), 2);

    private MapLoop() {}

    /** Each element becomes {@code clamp(x, -arg, arg)} if {@code CLAMP}, else {@code x * arg}, rounded to the type. */
    static void run(MemorySegment segment, long from, int count, double arg) {
        if (count > 0) {
            // One scalar read marks this compiled loop as an unsafe accessor, so that a fault in its
            // vector loads (a mapped file truncated meanwhile) is an InternalError, not a SIGBUS that
            // kills the JVM: see VectorKernels.
            segment.get(ValueLayout.JAVA_BYTE, from * TYPE.byteSize());
        }
        if (TYPE == DType.FLOAT64) {
            int full = count - count % VectorKernels.WIDTH;
            for (int piece = 0; piece < full; piece += STEPS * VectorKernels.WIDTH) {
                int end = Math.min(full, piece + STEPS * VectorKernels.WIDTH);
                for (int k = piece; k < end; k += VectorKernels.WIDTH) {
                    long at = (from + k) * Double.BYTES;
                    DoubleVector x = DoubleVector.fromMemorySegment(VectorKernels.DOUBLES, segment, at, ORDER);
                    // A clamped NaN lane is written as x's lane quieted: lanewise max and min, like Math.max,
                    // leave a NaN's bits unspecified (see ScalarKernels.clampTail).
                    (CLAMP ? x.max(-arg).min(arg).blend(x.reinterpretAsLongs().or(0x0008_0000_0000_0000L)
                            .reinterpretAsDoubles(), x.test(VectorOperators.IS_NAN))
                            : x.mul(arg)).intoMemorySegment(segment, at, ORDER);
                }
            }
            tail(segment, from + full, from + count, arg);
            return;
        }
        // Float32 arithmetic with (float) arg: one rounding for float32, then the 16-bit type's rounding.
        float a = (float) arg;
        if (TYPE == DType.FLOAT16 && !CLAMP && ScalarKernels.JDK_FLOAT16) {
            // Where the CPU converts float16 (F16C), C2's SuperWord compiles this scalar loop into
            // vcvtph2ps, vmulps and vcvtps2ph, 8 elements each: 13x faster in cache than the bit
            // operations below, which the Vector API cannot replace (it has no float16 conversion in
            // JDK 25). The same bits: the JDK's conversions round as the bit operations do, and a NaN
            // comes out of the multiply quieted, which both keep (ScalarKernels.FLOAT16_QUIET).
            // SuperWord vectorizes a loop over a segment only while its accesses have seen one kind of
            // segment: heap and native segments through the same loop made it scalar (430-930 us per
            // 64K instead of 30). So native segments run in place, and heap ones through a per-thread
            // array (copied out and back: a loop over an array vectorizes whatever the segment was).
            if (segment.isNative()) {
                for (long i = from; i < from + count; i++) {
                    segment.setAtIndex(ScalarKernels.SHORT, i,
                            Float.floatToFloat16(Float.float16ToFloat(segment.getAtIndex(ScalarKernels.SHORT, i)) * a));
                }
            } else {
                short[] halves = VectorKernels.FLOAT16_SCRATCH.get().halves;
                MemorySegment.copy(segment, ScalarKernels.SHORT, from * Short.BYTES, halves, 0, count);
                for (int k = 0; k < count; k++) {
                    halves[k] = Float.floatToFloat16(Float.float16ToFloat(halves[k]) * a);
                }
                MemorySegment.copy(halves, 0, segment, ScalarKernels.SHORT, from * Short.BYTES, count);
            }
            return;
        }
        if (TYPE == DType.BFLOAT16) {
            // Sixteen elements as eight ints: one element in each int's high half, one in its low half
            // (which is which depends on the byte order; each is mapped alike). A bfloat16 is the high
            // half of a float, so widening is a mask or a shift and narrowing puts the halves back, with
            // no 16-to-32-bit conversion and no narrowing shuffle: 40 % fewer operations than eight at a time.
            int pairs = VectorKernels.INTS_8.length();
            int fullPairs = count - count % (2 * pairs);
            for (int piece = 0; piece < fullPairs; piece += 2 * STEPS * pairs) {
                int end = Math.min(fullPairs, piece + 2 * STEPS * pairs);
                for (int k = piece; k < end; k += 2 * pairs) {
                    long at = (from + k) * Short.BYTES;
                    IntVector both = IntVector.fromMemorySegment(VectorKernels.INTS_8, segment, at, ORDER);
                    FloatVector high = both.and(0xffff0000).reinterpretAsFloats();
                    FloatVector low = both.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                    IntVector highBits = (CLAMP ? high.max(-a).min(a).blend(high.reinterpretAsInts().or(0x0040_0000)
                            .reinterpretAsFloats(), high.test(VectorOperators.IS_NAN)) : high.mul(a)).reinterpretAsInts();
                    IntVector lowBits = (CLAMP ? low.max(-a).min(a).blend(low.reinterpretAsInts().or(0x0040_0000)
                            .reinterpretAsFloats(), low.test(VectorOperators.IS_NAN)) : low.mul(a)).reinterpretAsInts();
                    // Round to nearest even on the high 16 bits: add 0x7fff plus the kept part's lowest bit.
                    // A NaN here came from a bfloat16 (its low half is zero; the multiply or the clamp only
                    // quiets it), so the add cannot carry it into infinity: it stays that NaN, and no NaN test is needed.
                    highBits = highBits.add(0x7fff).add(highBits.lanewise(VectorOperators.LSHR, 16).and(1)).and(0xffff0000);
                    lowBits = lowBits.add(0x7fff).add(lowBits.lanewise(VectorOperators.LSHR, 16).and(1))
                            .lanewise(VectorOperators.LSHR, 16);
                    highBits.or(lowBits).intoMemorySegment(segment, at, ORDER);
                }
            }
            tail(segment, from + fullPairs, from + count, arg);
            return;
        }
        int lanes = VectorKernels.FLOATS_8.length();
        int full = count - count % lanes;
        for (int piece = 0; piece < full; piece += STEPS * lanes) {
            int end = Math.min(full, piece + STEPS * lanes);
            for (int k = piece; k < end; k += lanes) {
                long at = from + k;
                // Load and widen eight elements to float, exactly. Float16 comes here for the clamp, and for
                // the scale on CPUs without float16 conversions: bit operations (see ScalarKernels.float16ToFloat).
                FloatVector x;
                if (TYPE == DType.FLOAT32) {
                    x = FloatVector.fromMemorySegment(VectorKernels.FLOATS_8, segment, at * Float.BYTES, ORDER);
                } else {
                    IntVector halves = (IntVector) ShortVector.fromMemorySegment(VectorKernels.SHORTS_8, segment,
                            at * Short.BYTES, ORDER).convertShape(VectorOperators.S2I, VectorKernels.INTS_8, 0);
                    IntVector magnitude = halves.and(0x7fff);
                    x = magnitude.lanewise(VectorOperators.LSHL, 13)
                            .lanewise(VectorOperators.OR, 0x7f800000, magnitude.compare(VectorOperators.GE, 0x7c00))
                            .or(halves.and(0x8000).lanewise(VectorOperators.LSHL, 16))
                            .reinterpretAsFloats().mul(ScalarKernels.FLOAT16_REBIAS);
                }
                FloatVector y = CLAMP ? x.max(-a).min(a).blend(x.reinterpretAsInts().or(0x0040_0000).reinterpretAsFloats(),
                        x.test(VectorOperators.IS_NAN)) : x.mul(a);
                // Round and store eight elements.
                if (TYPE == DType.FLOAT32) {
                    y.intoMemorySegment(segment, at * Float.BYTES, ORDER);
                    continue;
                }
                IntVector bits = y.reinterpretAsInts();
                IntVector sign = bits.lanewise(VectorOperators.LSHR, 16).and(0x8000);
                VectorMask<Integer> nan = y.test(VectorOperators.IS_NAN).cast(VectorKernels.INTS_8);
                // Float16, by the magnitude: at or above 2^16 (and inf, NaN) inf or NaN; below 2^-14
                // (subnormals) adding 0.5f leaves the bits in units of 2^-24, rounded by the add; in
                // between, rebias the exponent and round the 13 dropped bits. 65520 and up carry into inf.
                // A NaN keeps its payload's top ten bits, quieted (ScalarKernels.FLOAT16_QUIET).
                IntVector magnitude = bits.and(0x7fffffff);
                IntVector normal = magnitude.add(0xfff).add(magnitude.lanewise(VectorOperators.LSHR, 13).and(1))
                        .sub(112 << 23).lanewise(VectorOperators.LSHR, 13);
                IntVector subnormal = magnitude.reinterpretAsFloats().add(0.5f).reinterpretAsInts().sub(0x3f000000);
                IntVector special = IntVector.broadcast(VectorKernels.INTS_8, 0x7c00).blend(magnitude
                        .lanewise(VectorOperators.LSHR, 13).and(0x3ff).or(0x7c00 | ScalarKernels.FLOAT16_QUIET), nan);
                IntVector halves = normal.blend(subnormal, magnitude.compare(VectorOperators.LT, 0x38800000))
                        .blend(special, magnitude.compare(VectorOperators.GE, 0x47800000))
                        .or(sign);
                ((ShortVector) halves.convertShape(VectorOperators.I2S, VectorKernels.SHORTS_8, 0))
                        .intoMemorySegment(segment, at * Short.BYTES, ORDER);
            }
        }
        tail(segment, from + full, from + count, arg);
    }

    private static void tail(MemorySegment segment, long from, long end, double arg) {
        if (CLAMP) {
            ScalarKernels.clampTail(TYPE, segment, from, end, arg);
        } else {
            ScalarKernels.scaleTail(TYPE, segment, from, end, arg);
        }
    }
}
