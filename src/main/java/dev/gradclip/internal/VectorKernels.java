package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Vector API kernels. Loaded only by {@link KernelProvider}, after it has checked that
 * {@code jdk.incubator.vector} is present, so the static species below are safe to initialize.
 *
 * <p>One loop shape per kind of pass: the norm loop (8 accumulators of 4 doubles = the 32 logical
 * lanes of {@link Kernels}) and the map loop (scale, clamp). The dtype enters only where bytes
 * become numbers ({@code magnitude}, {@code loadFloats}) and where numbers become bytes
 * ({@code storeFloats}). The type is loop-invariant: C2 prunes the branches a program never takes.
 *
 * <p>256-bit vectors on every CPU that has them, AVX-512 included: the 32 lanes need 8 of them, which
 * fits AVX2's 16 registers beside the loads (4 accumulators of 8 doubles would fit AVX-512 too, with
 * the same bits, but Zen 4 splits 512-bit operations in two anyway). Narrower hardware uses the
 * scalar kernels, which give the same bits.
 */
public final class VectorKernels implements Kernels {

    private static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_256;
    private static final int WIDTH = 4;
    /** Half-width loads, widened once to a vector of doubles (one vcvtps2pd per 4 floats). */
    private static final VectorSpecies<Float> FLOATS_4 = FloatVector.SPECIES_128;
    private static final VectorSpecies<Short> SHORTS_4 = ShortVector.SPECIES_64;
    private static final VectorSpecies<Integer> INTS_4 = IntVector.SPECIES_128;
    /** The map loop works on whole vectors of floats (8 lanes), or of doubles for float64. */
    private static final VectorSpecies<Float> FLOATS_8 = FloatVector.SPECIES_256;
    private static final VectorSpecies<Short> SHORTS_8 = ShortVector.SPECIES_128;
    private static final VectorSpecies<Integer> INTS_8 = IntVector.SPECIES_256;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();

    /** {@code HALVING[h]} moves lane {@code j + h} onto lane {@code j}, for the fold inside a vector. */
    private static final VectorShuffle<Double> HALVING_2 = VectorShuffle.fromOp(DOUBLES, j -> (j + 2) % WIDTH);
    private static final VectorShuffle<Double> HALVING_1 = VectorShuffle.fromOp(DOUBLES, j -> (j + 1) % WIDTH);

    /** 2^112 moves a float16 exponent (bias 15) placed in a float's exponent field to float's bias 127. */
    private static final float FLOAT16_REBIAS = 0x1p112f;

    /** Throws UnsupportedOperationException where 256-bit vectors are not intrinsified. */
    public VectorKernels() {
        int preferred = DoubleVector.SPECIES_PREFERRED.vectorBitSize();
        if (preferred < DOUBLES.vectorBitSize()) {
            throw new UnsupportedOperationException("preferred vectors are " + preferred
                    + "-bit, narrower than the 256 bits the SIMD kernels use");
        }
    }

    @Override
    public void normBlock(DType type, boolean squares, MemorySegment segment, long from, int count, double scale,
                          BlockFigures out) {
        int full = count - count % LANES;
        DoubleVector s0 = DoubleVector.zero(DOUBLES), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        DoubleVector max = s0;
        for (int k = 0; k < full; k += LANES) {
            long at = from + k;
            DoubleVector x0 = magnitude(type, segment, at, scale);
            DoubleVector x1 = magnitude(type, segment, at + WIDTH, scale);
            DoubleVector x2 = magnitude(type, segment, at + 2 * WIDTH, scale);
            DoubleVector x3 = magnitude(type, segment, at + 3 * WIDTH, scale);
            s0 = term(squares, x0, s0);
            s1 = term(squares, x1, s1);
            s2 = term(squares, x2, s2);
            s3 = term(squares, x3, s3);
            DoubleVector m = x0.max(x1).max(x2.max(x3));
            DoubleVector x4 = magnitude(type, segment, at + 4 * WIDTH, scale);
            DoubleVector x5 = magnitude(type, segment, at + 5 * WIDTH, scale);
            DoubleVector x6 = magnitude(type, segment, at + 6 * WIDTH, scale);
            DoubleVector x7 = magnitude(type, segment, at + 7 * WIDTH, scale);
            s4 = term(squares, x4, s4);
            s5 = term(squares, x5, s5);
            s6 = term(squares, x6, s6);
            s7 = term(squares, x7, s7);
            max = max.max(m.max(x4.max(x5).max(x6.max(x7))));
        }
        // Logical lane 4a + w lives in lane w of accumulator a. Halving: lanes 16 apart (a, a + 4),
        // then 8 (a, a + 2), then 4 (a, a + 1), then inside the vector. Fixed order, never
        // reduceLanes(ADD), whose order is unspecified.
        DoubleVector v = s0.add(s4).add(s2.add(s6)).add(s1.add(s5).add(s3.add(s7)));
        v = v.add(v.rearrange(HALVING_2));
        v = v.add(v.rearrange(HALVING_1));
        double fold = v.lane(0);
        double blockMax = max.reduceLanes(VectorOperators.MAX); // exact in any order
        ScalarKernels.tail(type, squares, segment, from + full, from + count, scale, out);
        out.sum = fold + out.sum;
        out.max = Math.max(out.max, blockMax);
    }

    /** {@code fma(x, x, acc)} rounds once, as the reference does; for widened floats x*x is exact anyway. */
    private static DoubleVector term(boolean squares, DoubleVector x, DoubleVector acc) {
        return squares ? x.fma(x, acc) : acc.add(x);
    }

    /** Four elements from {@code index}, as {@code |x * scale|} in double; exact but for float64's scale. */
    private static DoubleVector magnitude(DType type, MemorySegment segment, long index, double scale) {
        if (type == DType.FLOAT32) {
            return ((DoubleVector) FloatVector.fromMemorySegment(FLOATS_4, segment, index * Float.BYTES, ORDER)
                    .convertShape(VectorOperators.F2D, DOUBLES, 0)).abs();
        }
        if (type == DType.FLOAT64) {
            return DoubleVector.fromMemorySegment(DOUBLES, segment, index * Double.BYTES, ORDER).mul(scale).abs();
        }
        IntVector halves = (IntVector) ShortVector.fromMemorySegment(SHORTS_4, segment, index * Short.BYTES, ORDER)
                .convertShape(VectorOperators.S2I, INTS_4, 0);
        FloatVector floats = type == DType.BFLOAT16
                ? halves.and(0x7fff).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                : float16ToFloat(halves.and(0x7fff));
        return (DoubleVector) floats.convertShape(VectorOperators.F2D, DOUBLES, 0);
    }

    /**
     * Float16 bits (in the low 16 bits of each int lane) to float, exactly: the exponent and fraction
     * shifted into a float's fields give the value times 2^-112 for normal and subnormal halves
     * alike, so one multiply by 2^112 finishes them; the all-ones exponent (inf, NaN) is set to
     * float's all-ones exponent instead, which the multiply keeps.
     */
    private static FloatVector float16ToFloat(IntVector bits) {
        IntVector magnitude = bits.and(0x7fff);
        IntVector shifted = magnitude.lanewise(VectorOperators.LSHL, 13)
                .lanewise(VectorOperators.OR, 0x7f800000, magnitude.compare(VectorOperators.GE, 0x7c00));
        IntVector sign = bits.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        return shifted.or(sign).reinterpretAsFloats().mul(FLOAT16_REBIAS);
    }

    @Override
    public void scaleBlock(DType type, MemorySegment segment, long from, int count, double c) {
        map(type, false, segment, from, count, c);
    }

    @Override
    public void clampBlock(DType type, MemorySegment segment, long from, int count, double bound) {
        map(type, true, segment, from, count, bound);
    }

    /** The map loop: each element becomes {@code clamp(x, -arg, arg)} if {@code clamp}, else {@code x * arg}. */
    private static void map(DType type, boolean clamp, MemorySegment segment, long from, int count, double arg) {
        if (type == DType.FLOAT64) {
            int full = count - count % WIDTH;
            for (int k = 0; k < full; k += WIDTH) {
                long at = (from + k) * Double.BYTES;
                DoubleVector x = DoubleVector.fromMemorySegment(DOUBLES, segment, at, ORDER);
                (clamp ? x.max(-arg).min(arg) : x.mul(arg)).intoMemorySegment(segment, at, ORDER);
            }
            tail(type, clamp, segment, from + full, from + count, arg);
            return;
        }
        float a = (float) arg;
        int lanes = FLOATS_8.length();
        int full = count - count % lanes;
        for (int k = 0; k < full; k += lanes) {
            long at = from + k;
            FloatVector x = loadFloats(type, segment, at);
            storeFloats(type, clamp ? x.max(-a).min(a) : x.mul(a), segment, at);
        }
        tail(type, clamp, segment, from + full, from + count, arg);
    }

    private static void tail(DType type, boolean clamp, MemorySegment segment, long from, long end, double arg) {
        if (clamp) {
            ScalarKernels.clampTail(type, segment, from, end, arg);
        } else {
            ScalarKernels.scaleTail(type, segment, from, end, arg);
        }
    }

    /** Eight elements of a 32- or 16-bit type from {@code index}, widened exactly to float. */
    private static FloatVector loadFloats(DType type, MemorySegment segment, long index) {
        if (type == DType.FLOAT32) {
            return FloatVector.fromMemorySegment(FLOATS_8, segment, index * Float.BYTES, ORDER);
        }
        IntVector halves = (IntVector) ShortVector.fromMemorySegment(SHORTS_8, segment, index * Short.BYTES, ORDER)
                .convertShape(VectorOperators.S2I, INTS_8, 0);
        return type == DType.BFLOAT16
                ? halves.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                : float16ToFloat(halves);
    }

    /** Stores eight floats into a 32- or 16-bit type, rounded to nearest even as {@link ScalarKernels#store}. */
    private static void storeFloats(DType type, FloatVector values, MemorySegment segment, long index) {
        if (type == DType.FLOAT32) {
            values.intoMemorySegment(segment, index * Float.BYTES, ORDER);
            return;
        }
        IntVector bits = values.reinterpretAsInts();
        IntVector halves = type == DType.BFLOAT16 ? toBfloat16(bits, values) : toFloat16(bits, values);
        ((ShortVector) halves.convertShape(VectorOperators.I2S, SHORTS_8, 0))
                .intoMemorySegment(segment, index * Short.BYTES, ORDER);
    }

    /** Round to nearest even on the high 16 bits: add 0x7fff plus the kept part's lowest bit, then shift. */
    private static IntVector toBfloat16(IntVector bits, FloatVector values) {
        IntVector rounded = bits.add(0x7fff).add(bits.lanewise(VectorOperators.LSHR, 16).and(1))
                .lanewise(VectorOperators.LSHR, 16);
        IntVector nan = bits.lanewise(VectorOperators.LSHR, 16).and(0x8000).or(ScalarKernels.BFLOAT16_NAN);
        return rounded.blend(nan, values.test(VectorOperators.IS_NAN).cast(INTS_8));
    }

    /**
     * Round to nearest even into float16, in three ranges of the magnitude: at or above 2^16 (and inf,
     * NaN) the result is inf or NaN; below 2^-14 (float16 subnormals) adding 0.5f leaves the bits
     * in units of 2^-24, rounded by the float add; in between, the exponent is rebiased and the
     * 13 dropped bits rounded by integer adds. Overflow from 65520 up carries into inf by itself.
     */
    private static IntVector toFloat16(IntVector bits, FloatVector values) {
        IntVector sign = bits.lanewise(VectorOperators.LSHR, 16).and(0x8000);
        IntVector magnitude = bits.and(0x7fffffff);
        IntVector normal = magnitude.add(0xfff).add(magnitude.lanewise(VectorOperators.LSHR, 13).and(1))
                .sub(112 << 23).lanewise(VectorOperators.LSHR, 13);
        IntVector subnormal = magnitude.reinterpretAsFloats().add(0.5f).reinterpretAsInts().sub(0x3f000000);
        IntVector special = IntVector.broadcast(INTS_8, 0x7c00)
                .blend(ScalarKernels.FLOAT16_NAN, values.test(VectorOperators.IS_NAN).cast(INTS_8));
        VectorMask<Integer> tiny = magnitude.compare(VectorOperators.LT, 0x38800000);
        VectorMask<Integer> huge = magnitude.compare(VectorOperators.GE, 0x47800000);
        return normal.blend(subnormal, tiny).blend(special, huge).or(sign);
    }

    @Override
    public String description() {
        return "vector (256-bit doubles, 8 accumulators, " + LANES + " lanes)";
    }
}
