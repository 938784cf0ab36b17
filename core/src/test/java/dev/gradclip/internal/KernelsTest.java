package dev.gradclip.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The vector kernels against the scalar reference, to the bit: every dtype, both terms, counts
 * through both loop copies (short blocks and a whole block), misaligned; and the float16 / bfloat16 conversions for all 65,536 bit patterns
 * against the JDK's.
 */
class KernelsTest {

    private static final Kernels VECTOR = vectorOrNull();
    private static final Kernels SCALAR = new ScalarKernels();

    private static Kernels vectorOrNull() {
        Kernels active = KernelProvider.kernels();
        return active instanceof ScalarKernels ? null : active;
    }

    /** Random bits: every exponent, subnormals, infinities and NaNs included, so that nothing is special-cased away. */
    private static MemorySegment randomBits(Arena arena, DType type, int count, int shift, long seed, boolean finite) {
        SplittableRandom random = new SplittableRandom(seed);
        long bytes = (long) count * type.byteSize();
        MemorySegment segment = arena.allocate(bytes + shift, 64).asSlice(shift, bytes);
        for (int i = 0; i < count; i++) {
            switch (type) {
                case FLOAT64 -> {
                    double v = Double.longBitsToDouble(random.nextLong());
                    segment.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i, finite && !Double.isFinite(v) ? 1.5 : v);
                }
                case FLOAT32 -> {
                    float v = Float.intBitsToFloat(random.nextInt());
                    segment.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, finite && !Float.isFinite(v) ? -2.5f : v);
                }
                case FLOAT16, BFLOAT16 -> {
                    short v = (short) random.nextInt();
                    boolean special = type == DType.FLOAT16 ? (v & 0x7c00) == 0x7c00 : (v & 0x7f80) == 0x7f80;
                    segment.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, finite && special ? (short) 0x3c00 : v);
                }
            }
        }
        return segment;
    }

    private static void assertSameBits(double expected, double actual, String where) {
        if (Double.doubleToLongBits(expected) != Double.doubleToLongBits(actual)) { // NaNs compare equal
            throw new AssertionError(where + ": " + expected + " != " + actual);
        }
    }

    /**
     * The counts the comparisons run: every count up to {@code dense} (several pieces of the short-block
     * loop copies), then every 37th, then a whole block (the full-block copies).
     */
    private static int nextCount(int count, int dense) {
        return count < dense ? count + 1 : count == Kernels.BLOCK ? count + 1 : Math.min(count + 37, Kernels.BLOCK);
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void normBlockMatchesScalarReferenceToTheBitForEveryCount(DType type) {
        if (VECTOR == null) {
            return; // this JVM runs the scalar kernels only; CrossWidthTest covers the comparison
        }
        BlockFigures expected = new BlockFigures();
        BlockFigures actual = new BlockFigures();
        try (Arena arena = Arena.ofConfined()) {
            for (int shift : new int[] {0, 1, 3}) {
                MemorySegment segment = randomBits(arena, type, Kernels.BLOCK + 7, shift, 42 + shift, true);
                double scale = type == DType.FLOAT64 ? 0x1p-700 : 1;
                for (int from = 0; from < 2; from++) {
                    for (int count = 0; count <= Kernels.BLOCK; count = nextCount(count, 300)) {
                        for (boolean squares : new boolean[] {true, false}) {
                            for (boolean max : new boolean[] {true, false}) {
                                SCALAR.normBlock(type, squares, max, segment, from, count, scale, expected);
                                VECTOR.normBlock(type, squares, max, segment, from, count, scale, actual);
                                String where = type + " shift " + shift + " from " + from + " count " + count
                                        + " squares " + squares + " max " + max;
                                assertSameBits(expected.sum, actual.sum, where + " sum");
                                assertSameBits(expected.max, actual.max, where + " max");
                            }
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void nonFiniteElementsGiveNaNOrInfinityInBothKernels(DType type) {
        BlockFigures figures = new BlockFigures();
        try (Arena arena = Arena.ofConfined()) {
            for (Kernels kernels : VECTOR == null ? new Kernels[] {SCALAR} : new Kernels[] {SCALAR, VECTOR}) {
                for (int at : new int[] {0, 5, 31, 32, 100}) {
                    MemorySegment segment = arena.allocate(101L * type.byteSize());
                    setElement(segment, type, at, Double.POSITIVE_INFINITY);
                    for (boolean max : new boolean[] {true, false}) {
                        kernels.normBlock(type, true, max, segment, 0, 101, 1, figures);
                        assertEquals(Double.POSITIVE_INFINITY, figures.max, kernels.description() + " " + type + " inf at " + at);
                        assertEquals(Double.POSITIVE_INFINITY, figures.sum);
                    }
                    setElement(segment, type, (at + 7) % 101, Double.NaN);
                    for (boolean max : new boolean[] {true, false}) {
                        kernels.normBlock(type, false, max, segment, 0, 101, 1, figures);
                        assertTrue(Double.isNaN(figures.max) && Double.isNaN(figures.sum), type + " NaN near " + at);
                    }
                }
            }
        }
    }

    static void setElement(MemorySegment segment, DType type, long i, double value) {
        switch (type) {
            case FLOAT64 -> segment.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i, value);
            case FLOAT32 -> segment.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) value);
            case FLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Float.floatToFloat16((float) value));
            case BFLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i,
                    (short) (Float.floatToRawIntBits((float) value) >>> 16));
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void scaleAndClampMatchScalarReferenceToTheBitForEveryCount(DType type) {
        if (VECTOR == null) {
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            for (int count = 0; count <= Kernels.BLOCK; count = nextCount(count, 600)) {
                for (boolean clamp : new boolean[] {false, true}) {
                    double arg = clamp ? 1.5 : 0.7390851332151607;
                    MemorySegment a = randomBits(arena, type, count + 2, 1, count, false);
                    MemorySegment b = arena.allocate(a.byteSize() + 1, 64).asSlice(1, a.byteSize()).copyFrom(a);
                    if (clamp) {
                        SCALAR.clampBlock(type, a, 1, count, arg);
                        VECTOR.clampBlock(type, b, 1, count, arg);
                    } else {
                        SCALAR.scaleBlock(type, a, 1, count, arg);
                        VECTOR.scaleBlock(type, b, 1, count, arg);
                    }
                    assertEquals(-1L, a.mismatch(b), type + (clamp ? " clamp" : " scale") + " count " + count);
                }
            }
        }
    }

    @Test
    void float16AndBfloat16ConversionsAgreeWithTheJdkForAllBitPatterns() {
        // Scaling by 1 widens every pattern to float and rounds it back: the identity, but NaNs
        // become the type's quiet NaN. Scaling by 2^-k exercises rounding into subnormals and ties.
        try (Arena arena = Arena.ofConfined()) {
            for (DType type : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
                for (double c : new double[] {1.0, 0.5, 0x1p-3, 0x1p-11, 0.7390851332151607, 0x1p-30}) {
                    MemorySegment all = arena.allocate(65536L * 2);
                    for (int bits = 0; bits < 65536; bits++) {
                        all.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, bits, (short) bits);
                    }
                    MemorySegment copy = arena.allocate(all.byteSize()).copyFrom(all);
                    (VECTOR == null ? SCALAR : VECTOR).scaleBlock(type, all, 0, 4096, c);
                    for (int from = 4096; from < 65536; from += 4096) {
                        (VECTOR == null ? SCALAR : VECTOR).scaleBlock(type, all, from, 4096, c);
                    }
                    float c32 = (float) c;
                    for (int bits = 0; bits < 65536; bits++) {
                        short input = copy.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, bits);
                        float widened = type == DType.FLOAT16 ? Float.float16ToFloat(input)
                                : Float.intBitsToFloat(input << 16);
                        float product = widened * c32;
                        short expected = type == DType.FLOAT16 ? jdkFloat16(product) : bfloat16(product);
                        short actual = all.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, bits);
                        assertEquals(expected, actual, type + " c " + c + " bits 0x" + Integer.toHexString(bits));
                    }
                }
            }
        }
    }

    /**
     * The scalar kernels convert float16 with bit operations (the JDK's conversions are slow without
     * F16C): every float16 widens as {@link Float#float16ToFloat} does, and floats round as
     * {@link Float#floatToFloat16} does, on a stride through all 2^32 patterns and on both sides of
     * every float16 rounding boundary (the midpoints between neighbours, where ties go to even).
     */
    @Test
    void scalarFloat16ConversionsAgreeWithTheJdk() {
        for (int bits = 0; bits < 65536; bits++) {
            float expected = Float.float16ToFloat((short) bits);
            float actual = ScalarKernels.float16ToFloat((short) bits);
            if (Float.isNaN(expected)) {
                assertTrue(Float.isNaN(actual) && (Float.floatToRawIntBits(actual) < 0) == (bits >= 0x8000),
                        "0x" + Integer.toHexString(bits));
            } else {
                assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(actual), "0x" + Integer.toHexString(bits));
            }
        }
        for (long bits = 0; bits < (1L << 32); bits += 61) { // 61 is odd: every low-bit pattern occurs
            assertRoundsLikeTheJdk(Float.intBitsToFloat((int) bits));
        }
        for (int half = 0; half < 0x7c00; half++) {
            float low = Float.float16ToFloat((short) half);
            float high = Float.float16ToFloat((short) (half + 1));
            float midpoint = (float) (((double) low + high) / 2); // exact: float has 13 more bits
            for (float f : new float[] {midpoint, Math.nextDown(midpoint), Math.nextUp(midpoint), low, high}) {
                assertRoundsLikeTheJdk(f);
                assertRoundsLikeTheJdk(-f);
            }
        }
    }

    private static void assertRoundsLikeTheJdk(float f) {
        short expected = jdkFloat16(f);
        short actual = ScalarKernels.toFloat16(f);
        if (expected != actual) {
            assertEquals(expected, actual, "float 0x" + Integer.toHexString(Float.floatToRawIntBits(f)));
        }
    }

    /**
     * The JDK's round to nearest even; a NaN keeps its sign and its payload's top ten bits, quieted
     * (what F16C's vcvtps2ph gives; the JDK's Java code would also fold in the payload's low 13 bits).
     */
    private static short jdkFloat16(float f) {
        if (Float.isNaN(f)) {
            int bits = Float.floatToRawIntBits(f);
            return (short) ((bits >>> 16 & 0x8000) | 0x7e00 | (bits >>> 13 & 0x3ff));
        }
        return Float.floatToFloat16(f);
    }

    /** Round to nearest even by definition: the nearer of the two bfloat16 neighbours, ties to the even one. */
    private static short bfloat16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) (bits >>> 16); // the NaN's high half (its low half is zero here)
        }
        if (Float.isInfinite(f)) {
            return (short) (bits >>> 16);
        }
        int down = bits & 0xffff0000;
        int up = down + 0x10000;
        double exact = f;
        double below = Float.intBitsToFloat(down);
        double above = Float.intBitsToFloat(up);
        double dBelow = Math.abs(exact - below);
        double dAbove = Math.abs(above - exact);
        if (dBelow < dAbove || (dBelow == dAbove && ((down >>> 16) & 1) == 0)) {
            return (short) (down >>> 16);
        }
        return (short) (up >>> 16);
    }

    @Test
    void vectorKernelsAreChosenWhenTheModuleIsPresentAndVectorsAreWideEnough() {
        String description = KernelProvider.kernels().description();
        if (jdk.incubator.vector.DoubleVector.SPECIES_PREFERRED.vectorBitSize() >= 256) {
            assertTrue(description.startsWith("vector"), description);
        } else {
            assertTrue(description.startsWith("scalar"), description);
        }
    }
}
