package dev.gradclip.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The block kernels against the scalar reference, over every tail length and alignment. */
class KernelsTest {

    private static final Kernels ACTIVE = KernelProvider.kernels();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** Values over many decades, so that summation order shows in the last bits. */
    private static MemorySegment randomFloats(Arena arena, int count, int misalignBytes, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        MemorySegment segment = arena.allocate((long) count * Float.BYTES + misalignBytes, 64)
                .asSlice(misalignBytes, (long) count * Float.BYTES);
        for (int i = 0; i < count; i++) {
            double magnitude = Math.pow(10, random.nextInt(-6, 7));
            segment.setAtIndex(FLOAT, i, (float) (random.nextDouble(-1, 1) * magnitude));
        }
        return segment;
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2, 3})
    void blockSumMatchesScalarReferenceToTheBitForEveryCount(int misalignBytes) {
        Kernels reference = new ScalarKernels(ACTIVE.logicalLanes());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment floats = randomFloats(arena, Kernels.BLOCK + 7, misalignBytes, 42);
            for (int from = 0; from < 3; from++) {
                for (int count = 0; count <= Kernels.BLOCK; count++) {
                    double expected = reference.blockSumOfSquares(floats, from, count);
                    double actual = ACTIVE.blockSumOfSquares(floats, from, count);
                    if (Double.doubleToRawLongBits(expected) != Double.doubleToRawLongBits(actual)) {
                        throw new AssertionError("from " + from + ", count " + count + ": " + expected + " != " + actual);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2, 3})
    void scaleWritesFloatProductForEveryCount(int misalignBytes) {
        float c = 0.7390851f;
        try (Arena arena = Arena.ofConfined()) {
            int max = 3 * ACTIVE.logicalLanes() + 3;
            for (int count : counts(max)) {
                for (Kernels kernels : List.of(ACTIVE, new ScalarKernels())) {
                    MemorySegment floats = randomFloats(arena, count + 2, misalignBytes, count);
                    float[] before = floats.toArray(FLOAT);
                    kernels.scaleBlock(floats, 1, count, c);
                    float[] after = floats.toArray(FLOAT);
                    for (int i = 0; i < before.length; i++) {
                        float expected = i >= 1 && i <= count ? before[i] * c : before[i];
                        assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(after[i]),
                                kernels.description() + ", count " + count + ", element " + i);
                    }
                }
            }
        }
    }

    /** 0 to max, and the sizes around powers of two that hit every loop boundary. */
    private static int[] counts(int max) {
        int[] extra = {1023, 1024, 1025, 2046, 2047, 2048, 2049, 4095, 4096};
        int[] counts = new int[max + 1 + extra.length];
        for (int i = 0; i <= max; i++) {
            counts[i] = i;
        }
        System.arraycopy(extra, 0, counts, max + 1, extra.length);
        return counts;
    }

    @Test
    void scalarReferenceAddsInTheDocumentedOrder() {
        // Ten elements, four lanes: lanes {0,4} {1,5} {2,6} {3,7}, fold (l0+l2)+(l1+l3), tail 8, 9.
        float[] x = {1e8f, 3, 5, 7, 1, 2, 4, 6, 1e-3f, 3e-3f};
        double[] sq = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            sq[i] = (double) x[i] * x[i];
        }
        double l0 = 0 + sq[0] + sq[4];
        double l1 = 0 + sq[1] + sq[5];
        double l2 = 0 + sq[2] + sq[6];
        double l3 = 0 + sq[3] + sq[7];
        double expected = ((l0 + l2) + (l1 + l3)) + (0 + sq[8] + sq[9]);
        double actual = new ScalarKernels(4).blockSumOfSquares(MemorySegment.ofArray(x), 0, x.length);
        assertEquals(Double.doubleToRawLongBits(expected), Double.doubleToRawLongBits(actual));
        // The order matters for these values: a plain left-to-right sum rounds differently.
        double plain = 0;
        for (double s : sq) {
            plain += s;
        }
        assertTrue(plain != actual);
    }

    @Test
    void relativeErrorBoundIsWithinTheContractForEveryLaneCount() {
        for (int lanes = ScalarKernels.MIN_LANES; lanes <= ScalarKernels.MAX_LANES; lanes *= 2) {
            assertTrue(GlobalNorm.relativeErrorBound(lanes) <= 1e-13, "lanes " + lanes);
        }
        // The figures quoted in the javadoc.
        assertEquals(7.7e-15, GlobalNorm.relativeErrorBound(32), 0.05e-15);
        assertEquals(1.5e-14, GlobalNorm.relativeErrorBound(16), 0.05e-14);
        assertEquals(2.9e-14, GlobalNorm.relativeErrorBound(8), 0.05e-14);
    }

    @Test
    void scalarReferenceRejectsLaneCountsOutsideTheBoundedRange() {
        assertThrows(IllegalArgumentException.class, () -> new ScalarKernels(12));
        assertThrows(IllegalArgumentException.class, () -> new ScalarKernels(ScalarKernels.MIN_LANES / 2));
        assertThrows(IllegalArgumentException.class, () -> new ScalarKernels(ScalarKernels.MAX_LANES * 2));
    }

    @Test
    void nonFiniteElementsGiveNanOrInfinityAtEveryPosition() {
        for (Kernels kernels : List.of(ACTIVE, new ScalarKernels())) {
            int count = 2 * kernels.logicalLanes() + 5;
            for (int at = 0; at < count; at++) {
                float[] x = new float[count];
                java.util.Arrays.fill(x, 2.5f);
                x[at] = Float.NEGATIVE_INFINITY;
                assertEquals(Double.POSITIVE_INFINITY,
                        GlobalNorm.totalNorm(kernels, List.of(MemorySegment.ofArray(x))), "inf at " + at);
                x[(at + 1) % count] = Float.POSITIVE_INFINITY;
                x[(at + 7) % count] = Float.NaN;
                assertTrue(Double.isNaN(GlobalNorm.totalNorm(kernels, List.of(MemorySegment.ofArray(x)))), "NaN at " + at);
            }
        }
    }

    @Test
    void infinityInOneBlockAndNanInALaterSegmentGiveNan() {
        float[] first = new float[3 * Kernels.BLOCK];
        first[Kernels.BLOCK + 1] = Float.POSITIVE_INFINITY;
        float[] second = {1, Float.NaN};
        assertTrue(Double.isNaN(GlobalNorm.totalNorm(ACTIVE,
                List.of(MemorySegment.ofArray(first), MemorySegment.ofArray(second)))));
        first[2 * Kernels.BLOCK + 5] = Float.POSITIVE_INFINITY; // two infinite blocks: inf, not inf - inf
        assertEquals(Double.POSITIVE_INFINITY, GlobalNorm.totalNorm(ACTIVE, List.of(MemorySegment.ofArray(first))));
    }
}
