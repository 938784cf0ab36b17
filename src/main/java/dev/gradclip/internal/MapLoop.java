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
 * {@link Specialized} defines a hidden copy per dtype and operation, whose {@code TYPE} and
 * {@code CLAMP} are constants. As in {@link NormLoop}, the loop calls no helper of ours.
 */
final class MapLoop {

    private static final DType TYPE = Specialized.dtype(MethodHandles.lookup());
    private static final boolean CLAMP = Specialized.variant(MethodHandles.lookup(), 1);

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
            for (int k = 0; k < full; k += VectorKernels.WIDTH) {
                long at = (from + k) * Double.BYTES;
                DoubleVector x = DoubleVector.fromMemorySegment(VectorKernels.DOUBLES, segment, at, ORDER);
                (CLAMP ? x.max(-arg).min(arg) : x.mul(arg)).intoMemorySegment(segment, at, ORDER);
            }
            tail(segment, from + full, from + count, arg);
            return;
        }
        // Float32 arithmetic with (float) arg: one rounding for float32, then the 16-bit type's rounding.
        float a = (float) arg;
        int lanes = VectorKernels.FLOATS_8.length();
        int full = count - count % lanes;
        for (int k = 0; k < full; k += lanes) {
            long at = from + k;
            // Load and widen eight elements to float, exactly.
            FloatVector x;
            if (TYPE == DType.FLOAT32) {
                x = FloatVector.fromMemorySegment(VectorKernels.FLOATS_8, segment, at * Float.BYTES, ORDER);
            } else {
                IntVector halves = (IntVector) ShortVector.fromMemorySegment(VectorKernels.SHORTS_8, segment,
                        at * Short.BYTES, ORDER).convertShape(VectorOperators.S2I, VectorKernels.INTS_8, 0);
                if (TYPE == DType.BFLOAT16) {
                    x = halves.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
                } else {
                    IntVector magnitude = halves.and(0x7fff);
                    x = magnitude.lanewise(VectorOperators.LSHL, 13)
                            .lanewise(VectorOperators.OR, 0x7f800000, magnitude.compare(VectorOperators.GE, 0x7c00))
                            .or(halves.and(0x8000).lanewise(VectorOperators.LSHL, 16))
                            .reinterpretAsFloats().mul(ScalarKernels.FLOAT16_REBIAS);
                }
            }
            FloatVector y = CLAMP ? x.max(-a).min(a) : x.mul(a);
            // Round and store eight elements.
            if (TYPE == DType.FLOAT32) {
                y.intoMemorySegment(segment, at * Float.BYTES, ORDER);
                continue;
            }
            IntVector bits = y.reinterpretAsInts();
            IntVector halves;
            if (TYPE == DType.BFLOAT16) {
                // Round to nearest even on the high 16 bits: add 0x7fff plus the kept part's lowest bit.
                // A NaN here came from a bfloat16 (its low half is zero; the multiply only quiets it), so
                // the add cannot carry it into infinity: it stays that NaN, and no NaN test is needed.
                halves = bits.add(0x7fff).add(bits.lanewise(VectorOperators.LSHR, 16).and(1))
                        .lanewise(VectorOperators.LSHR, 16);
            } else {
                IntVector sign = bits.lanewise(VectorOperators.LSHR, 16).and(0x8000);
                VectorMask<Integer> nan = y.test(VectorOperators.IS_NAN).cast(VectorKernels.INTS_8);
                // Float16, by the magnitude: at or above 2^16 (and inf, NaN) inf or NaN; below 2^-14
                // (subnormals) adding 0.5f leaves the bits in units of 2^-24, rounded by the add; in
                // between, rebias the exponent and round the 13 dropped bits. 65520 and up carry into inf.
                IntVector magnitude = bits.and(0x7fffffff);
                IntVector normal = magnitude.add(0xfff).add(magnitude.lanewise(VectorOperators.LSHR, 13).and(1))
                        .sub(112 << 23).lanewise(VectorOperators.LSHR, 13);
                IntVector subnormal = magnitude.reinterpretAsFloats().add(0.5f).reinterpretAsInts().sub(0x3f000000);
                IntVector special = IntVector.broadcast(VectorKernels.INTS_8, 0x7c00).blend(ScalarKernels.FLOAT16_NAN, nan);
                halves = normal.blend(subnormal, magnitude.compare(VectorOperators.LT, 0x38800000))
                        .blend(special, magnitude.compare(VectorOperators.GE, 0x47800000))
                        .or(sign);
            }
            ((ShortVector) halves.convertShape(VectorOperators.I2S, VectorKernels.SHORTS_8, 0))
                    .intoMemorySegment(segment, at * Short.BYTES, ORDER);
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
