package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The scalar reference kernels: the plain-Java statement of the order {@link Kernels} defines, and
 * the fallback where the vector kernels would be slow. {@link VectorKernels} returns the same bits,
 * which the tests check.
 *
 * <p>Two things here avoid JDK paths that are fast only on some CPUs, since the fallback is what
 * runs on exactly those CPUs. The float16 conversions are bit operations where
 * {@link Float#float16ToFloat}/{@link Float#floatToFloat16} are not intrinsics (an x86 without F16C,
 * where they run as Java code 3 to 5x slower), and the JDK's where they are (1.6x faster there); the
 * tests check the bit operations against the JDK's on every float16 and on every rounding boundary.
 * And a float64 square is added by
 * {@link SquareAdd#squareAdd} where {@link Math#fma} is not one instruction (no FMA, or
 * {@code -XX:-UseFMA}), since it is then a BigDecimal computation about 1000x slower; both give the
 * same bits.
 */
public final class ScalarKernels implements Kernels {

    /** Native byte order, any alignment: heap, native and mapped segments all qualify. */
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    static final ValueLayout.OfDouble DOUBLE = ValueLayout.JAVA_DOUBLE_UNALIGNED;
    static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;

    /**
     * A float16 NaN result keeps the NaN's sign and its payload's top ten bits, quieted: this bit set.
     * That is what F16C's vcvtps2ph and {@link Float#floatToFloat16} give for every NaN the passes
     * make (a widened float16 or bfloat16, or a multiply's quieted NaN: low 13 bits zero), so the
     * JDK's conversions, the bit operations and the vector kernels agree; bfloat16 keeps its NaNs the same way.
     */
    static final int FLOAT16_QUIET = 0x0200;

    /** 2^112 moves a float16 exponent (bias 15) placed in a float's exponent field to float's bias 127. */
    static final float FLOAT16_REBIAS = 0x1p112f;

    @Override
    public void normBlock(DType type, boolean squares, boolean max, MemorySegment segment, long from, int count,
                          double scale, BlockFigures out) {
        int full = count - count % LANES;
        double fold = fold(type, squares, segment, from, full, scale, 0, 1);
        double largest = 0;
        for (long i = from; i < from + full; i++) {
            largest = Math.max(largest, magnitude(type, segment, i, scale));
        }
        tail(type, squares, segment, from + full, from + count, scale, out);
        out.sum = fold + out.sum;
        out.max = max ? Math.max(out.max, largest) : status(out.sum);
    }

    /** Without the maximum, a block's figure for it: NaN or +Infinity if the sum is, else 0. */
    static double status(double sum) {
        return Double.isFinite(sum) ? 0 : sum;
    }

    /**
     * The tail of a block, elements {@code from} to {@code end}: their terms added in order from zero
     * into {@code out.sum}, their largest magnitude into {@code out.max}.
     */
    static void tail(DType type, boolean squares, MemorySegment segment, long from, long end, double scale,
                     BlockFigures out) {
        double sum = 0;
        double max = 0;
        for (long i = from; i < end; i++) {
            double a = magnitude(type, segment, i, scale);
            sum = term(type, squares, a, sum);
            max = Math.max(max, a);
        }
        out.sum = sum;
        out.max = max;
    }

    /** {@code sum + a*a} rounded once (an fma), or {@code sum + a}. */
    private static double term(DType type, boolean squares, double a, double sum) {
        if (!squares) {
            return sum + a;
        }
        // A widened float's square is exact in double, so a plain multiply-add rounds once too,
        // and avoids Math.fma's slow software path on CPUs without FMA.
        if (type != DType.FLOAT64) {
            return a * a + sum;
        }
        return HARDWARE_FMA ? Math.fma(a, a, sum) : SquareAdd.squareAdd(a, sum);
    }

    /**
     * {@code -Dgradclip.float16=bits} makes every kernel convert float16 with the bit operations, as
     * on a CPU without hardware conversions: for the test that both ways give the same bits.
     */
    static final String FLOAT16_PROPERTY = "gradclip.float16";

    /**
     * Whether the JDK's float16 conversions are intrinsics here; both give the same bits. Where they
     * are, C2's SuperWord also turns a loop of them into vector conversions ({@link MapLoop}, {@link NormLoop}).
     */
    static final boolean JDK_FLOAT16 = !"bits".equals(System.getProperty(FLOAT16_PROPERTY)) && jdkFloat16IsFaster();

    /**
     * Whether the JDK's float16 conversions ({@link Float#float16ToFloat}, {@link Float#floatToFloat16})
     * beat the bit operations below. Where the CPU converts float16 in hardware (x86 F16C, ARM) the
     * JDK's are intrinsics and 1.6x faster inside these kernels; without (an x86 without AVX) they are
     * Java code, 3 to 5x slower (docs/performance.md, section "Kernel choice on other CPUs"). Timed by
     * {@link StartupTiming}: the intrinsic is an instruction against a dozen operations, the Java code
     * dozens against a dozen, interpreted as compiled.
     */
    private static boolean jdkFloat16IsFaster() {
        short[] halves = new short[512];
        for (int i = 0; i < halves.length; i++) {
            halves[i] = (short) (0x3c00 + 7 * i); // normal values from 1 up
        }
        long[] nanos = StartupTiming.bestOfFive(() -> {
            int sum = 0;
            for (short half : halves) {
                sum += Float.floatToFloat16(Float.float16ToFloat(half) * 0.75f);
            }
            return sum;
        }, () -> {
            int sum = 0;
            for (short half : halves) {
                sum += toFloat16(float16ToFloat(half) * 0.75f);
            }
            return sum;
        });
        return nanos[0] < nanos[1];
    }

    /** Whether {@link Math#fma} is one instruction here ({@link KernelProvider#hardwareFma()}). */
    private static final boolean HARDWARE_FMA = KernelProvider.hardwareFma();

    /**
     * Lane {@code lane} after the halving steps down to {@code step}: at each step lane {@code j}
     * takes lane {@code j + step}, so the value is the fold of the two lanes one step wider.
     * Recursing instead of storing the lane sums keeps the fallback allocation-free.
     */
    private static double fold(DType type, boolean squares, MemorySegment segment, long from, int full, double scale,
                               int lane, int step) {
        if (step == LANES) {
            double sum = 0;
            for (int k = lane; k < full; k += LANES) {
                sum = term(type, squares, magnitude(type, segment, from + k, scale), sum);
            }
            return sum;
        }
        return fold(type, squares, segment, from, full, scale, lane, 2 * step)
                + fold(type, squares, segment, from, full, scale, lane + step, 2 * step);
    }

    /** {@code |x * scale|} of element {@code i}, exactly widened to double ({@code scale} is for FLOAT64 only). */
    static double magnitude(DType type, MemorySegment segment, long i, double scale) {
        return Math.abs(type == DType.FLOAT64 ? segment.getAtIndex(DOUBLE, i) * scale : load(type, segment, i));
    }

    /** Element {@code i} of a 32- or 16-bit type, widened exactly to float. */
    static float load(DType type, MemorySegment segment, long i) {
        return switch (type) {
            case FLOAT32 -> segment.getAtIndex(FLOAT, i);
            case FLOAT16 -> JDK_FLOAT16 ? Float.float16ToFloat(segment.getAtIndex(SHORT, i))
                    : float16ToFloat(segment.getAtIndex(SHORT, i));
            case BFLOAT16 -> Float.intBitsToFloat(segment.getAtIndex(SHORT, i) << 16);
            case FLOAT64 -> throw new IllegalArgumentException("float64 does not widen to float");
        };
    }

    /** Stores {@code value} into element {@code i} of a 32- or 16-bit type, rounded to nearest even. */
    static void store(DType type, MemorySegment segment, long i, float value) {
        switch (type) {
            case FLOAT32 -> segment.setAtIndex(FLOAT, i, value);
            case FLOAT16 -> segment.setAtIndex(SHORT, i, JDK_FLOAT16 && !Float.isNaN(value)
                    ? Float.floatToFloat16(value) : toFloat16(value));
            case BFLOAT16 -> segment.setAtIndex(SHORT, i, toBfloat16(value));
            case FLOAT64 -> throw new IllegalArgumentException("float64 does not narrow from float");
        }
    }

    /**
     * A float16 widened exactly to float, as {@link Float#float16ToFloat}: the magnitude's bits go
     * under a float's exponent field (all ones for inf and NaN), and 2^112 moves the exponent from
     * float16's bias (15) to float's (127); float16 subnormals become float subnormals first, which
     * the multiply by a power of two also keeps exact. The same steps as {@link MapLoop}'s.
     */
    static float float16ToFloat(short half) {
        int magnitude = half & 0x7fff;
        int bits = magnitude << 13 | (magnitude >= 0x7c00 ? 0x7f800000 : 0) | (half & 0x8000) << 16;
        return Float.intBitsToFloat(bits) * FLOAT16_REBIAS;
    }

    /**
     * Round to nearest even, as {@link Float#floatToFloat16}; a NaN keeps its sign and the top ten
     * bits of its payload, quieted ({@link #FLOAT16_QUIET}). By the magnitude: from 2^16 up (and inf, NaN) inf or NaN; below 2^-14 adding
     * 0.5f leaves the value in units of 2^-24, rounded by the add; in between, rebias the exponent
     * and round off the 13 dropped bits (65520 and up carry into inf). The same steps as {@link MapLoop}'s.
     */
    static short toFloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = bits >>> 16 & 0x8000;
        int magnitude = bits & 0x7fffffff;
        if (magnitude >= 0x47800000) {
            return (short) (sign | (magnitude > 0x7f800000 ? 0x7c00 | FLOAT16_QUIET | magnitude >>> 13 & 0x3ff : 0x7c00));
        }
        if (magnitude < 0x38800000) {
            return (short) (sign | (Float.floatToRawIntBits(Float.intBitsToFloat(magnitude) + 0.5f) - 0x3f000000));
        }
        return (short) (sign | (magnitude + 0xfff + (magnitude >>> 13 & 1) - (112 << 23)) >>> 13);
    }

    /**
     * Round to nearest even on the high 16 bits. A NaN keeps its high half, quieted: every NaN the
     * passes store is a widened bfloat16, quieted (by a multiply, or explicitly in the clamp), whose low
     * half is zero, and for it that is exactly what the rounding add gives, which is how the vector
     * kernel stores it.
     */
    static short toBfloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) (bits >>> 16 | 0x0040);
        }
        return (short) ((bits + 0x7fff + (bits >>> 16 & 1)) >>> 16);
    }

    @Override
    public void scaleBlock(DType type, MemorySegment segment, long from, int count, double c) {
        scaleTail(type, segment, from, from + count, c);
    }

    static void scaleTail(DType type, MemorySegment segment, long from, long end, double c) {
        if (!(c > 0)) {
            scaleByZeroOrNaN(type, segment, from, end, c);
            return;
        }
        if (type == DType.FLOAT64) {
            for (long i = from; i < end; i++) {
                segment.setAtIndex(DOUBLE, i, segment.getAtIndex(DOUBLE, i) * c);
            }
            return;
        }
        if (!Clipping.floatCoefficient(c)) {
            for (long i = from; i < end; i++) {
                store(type, segment, i, (float) (load(type, segment, i) * c));
            }
            return;
        }
        float c32 = (float) c;
        for (long i = from; i < end; i++) {
            store(type, segment, i, load(type, segment, i) * c32);
        }
    }

    /**
     * Scaling by 0 (an infinite norm, or {@code maxNorm} 0) or NaN (a NaN norm), written from the bits
     * by the NaN rule of {@link Kernels#scaleBlock}: a NaN element quieted; for a NaN factor every other
     * element, and for 0 an infinite one, the canonical quiet NaN; a finite element times 0 its signed
     * zero. Multiplying would leave those NaN bits to the hardware (x86 makes a negative NaN of
     * infinity times zero, ARM a positive one) and, for two NaN operands, to the operand order the
     * compiler picked. A rare path, shared by both kernels.
     */
    static void scaleByZeroOrNaN(DType type, MemorySegment segment, long from, long end, double c) {
        int width = 8 * type.byteSize();
        long sign = 1L << (width - 1);
        long infinity = switch (type) {
            case FLOAT64 -> 0x7ff0_0000_0000_0000L;
            case FLOAT32 -> 0x7f80_0000L;
            case FLOAT16 -> 0x7c00L;
            case BFLOAT16 -> 0x7f80L;
        };
        long quiet = quietBit(type);
        boolean nanFactor = Double.isNaN(c);
        for (long i = from; i < end; i++) {
            long bits = rawBits(type, segment, i);
            long magnitude = bits & (sign - 1);
            long out = magnitude > infinity ? bits | quiet
                    : nanFactor || magnitude == infinity ? infinity | quiet
                    : bits & sign;
            setRawBits(type, segment, i, out);
        }
    }

    /** The top bit of the significand, set in a quiet NaN: the canonical NaN is infinity with this bit. */
    private static long quietBit(DType type) {
        return switch (type) {
            case FLOAT64 -> 0x0008_0000_0000_0000L;
            case FLOAT32 -> 0x0040_0000L;
            case FLOAT16 -> FLOAT16_QUIET;
            case BFLOAT16 -> 0x0040L;
        };
    }

    private static long rawBits(DType type, MemorySegment segment, long i) {
        return switch (type) {
            case FLOAT64 -> segment.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i);
            case FLOAT32 -> segment.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i) & 0xffff_ffffL;
            case FLOAT16, BFLOAT16 -> segment.getAtIndex(SHORT, i) & 0xffffL;
        };
    }

    private static void setRawBits(DType type, MemorySegment segment, long i, long bits) {
        switch (type) {
            case FLOAT64 -> segment.setAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i, bits);
            case FLOAT32 -> segment.setAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i, (int) bits);
            case FLOAT16, BFLOAT16 -> segment.setAtIndex(SHORT, i, (short) bits);
        }
    }

    @Override
    public void clampBlock(DType type, MemorySegment segment, long from, int count, double bound) {
        clampTail(type, segment, from, from + count, bound);
    }

    /** A NaN is written back quieted, whatever bits Math.max hands on (Java leaves a NaN's bits unspecified). */
    static void clampTail(DType type, MemorySegment segment, long from, long end, double bound) {
        if (type == DType.FLOAT64) {
            for (long i = from; i < end; i++) {
                double x = segment.getAtIndex(DOUBLE, i);
                segment.setAtIndex(DOUBLE, i, x != x ? quieted(x) : Math.min(Math.max(x, -bound), bound));
            }
            return;
        }
        float b = (float) bound;
        for (long i = from; i < end; i++) {
            float x = load(type, segment, i);
            store(type, segment, i, x != x ? quieted(x) : Math.min(Math.max(x, -b), b));
        }
    }

    static double quieted(double nan) {
        return Double.longBitsToDouble(Double.doubleToRawLongBits(nan) | 0x0008_0000_0000_0000L);
    }

    static float quieted(float nan) {
        return Float.intBitsToFloat(Float.floatToRawIntBits(nan) | 0x0040_0000);
    }

    @Override
    public String description() {
        return "scalar (" + LANES + " lanes)";
    }
}
