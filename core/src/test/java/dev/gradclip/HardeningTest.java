package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Numeric edge cases of the coefficient: a float32 coefficient that would underflow, the range of
 * the clipped-norm bound, and {@code -0.0} bounds. The list, overlap and allocation cases are in {@link ListSnapshotTest}, {@code OverlapsTest} and
 * {@link AllocationTest}; the kernel choice in {@link CrossWidthTest}; the fallback's float16 conversions and
 * float64 squares in {@code KernelsTest} and {@code SquareAddTest}; a truncated mapping in {@link TruncatedMappingTest}.
 */
class HardeningTest {

    /** Every element equals {@code (float) (g * c)}, c the double coefficient, bit for bit. */
    private static void assertScaledExactly(float[] before, float[] after, double c) {
        for (int i = 0; i < before.length; i++) {
            float expected = (float) (before[i] * c);
            assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(after[i]),
                    "element " + i + ": " + after[i] + " instead of " + expected + " (c = " + c + ")");
        }
    }

    /** Three cases of c = maxNorm / norm below 2^-126, where (float) c is subnormal or 0. */
    @Test
    void coefficientBelowTheFloatRangeStillScalesEachElementExactly() {
        double[][] cases = {{Float.MAX_VALUE, 2e38, 1}, {3e38, 1e38, 1e-3}, {3e38, 1e38, 1e-7}};
        for (double[] k : cases) {
            float[] original = {(float) k[0], (float) k[1]};
            double maxNorm = k[2];

            float[][] arrays = {original.clone()};
            double norm = GradClip.clipGradNorm(arrays, maxNorm); // the 0.1 path
            double c = GradClip.clipCoefficient(norm, maxNorm);
            assertTrue(c > 0 && c < 0x1p-126, "the case must exercise a subnormal (float) c: " + c);
            assertScaledExactly(original, arrays[0], c);
            // Direction kept: the 3:1 (or MAX:2e38) ratio survives, and the clipped norm is maxNorm.
            assertEquals(original[0] / (double) original[1], arrays[0][0] / (double) arrays[0][1], 1e-6);
            assertEquals(maxNorm, Math.hypot(arrays[0][0], arrays[0][1]), maxNorm * 1e-6);

            float[] viaGradients = original.clone();
            try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).threads(1).build()) {
                assertEquals(norm, clipper.clip(Gradients.of(viaGradients)));
            }
            assertScaledExactly(original, viaGradients, c);
        }
    }

    @Test
    void bfloat16WithASubnormalFloatCoefficientRoundsTheDoubleProduct() {
        try (Arena arena = Arena.ofConfined()) {
            float[] values = {3e38f, -1e38f, 2.5e37f};
            MemorySegment segment = arena.allocate(values.length * 2L);
            for (int i = 0; i < values.length; i++) {
                segment.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits(values[i]) >>> 16));
            }
            float[] widened = new float[values.length];
            for (int i = 0; i < values.length; i++) {
                widened[i] = Float.intBitsToFloat(segment.getAtIndex(ValueLayout.JAVA_SHORT, i) << 16);
            }
            Gradients grads = Gradients.of(DType.BFLOAT16, List.of(segment));
            double norm = GradClip.clipGradNorm(grads, 1e-3, 2);
            double c = GradClip.clipCoefficient(norm, 1e-3);
            assertTrue(c < 0x1p-126);
            for (int i = 0; i < values.length; i++) {
                int bits = Float.floatToRawIntBits((float) (widened[i] * c));
                short expected = (short) ((bits + 0x7fff + (bits >>> 16 & 1)) >>> 16);
                assertEquals(expected, segment.getAtIndex(ValueLayout.JAVA_SHORT, i), "element " + i);
            }
        }
    }

    /**
     * The clipped float32 norm is at most {@code maxNorm (1 + 1e-6)} for {@code maxNorm >= 1e-29}
     * (GradClip's javadoc derives it), and not below that range, where correctly rounded subnormals
     * cannot come closer: the documented exception.
     */
    @Test
    void clippedNormBoundHoldsDownToTheStatedMaxNorm() {
        java.util.Random random = new java.util.Random(12);
        for (int trial = 0; trial < 200; trial++) {
            float[] g = new float[1 + random.nextInt(5000)];
            for (int i = 0; i < g.length; i++) {
                g[i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(60) - 30));
            }
            double maxNorm = 1e-29 * Math.pow(10, random.nextInt(40));
            float[][] grads = {g};
            double norm = GradClip.clipGradNorm(grads, maxNorm);
            if (norm > maxNorm) {
                double clipped = Exact.norm(grads).doubleValue();
                assertTrue(clipped <= maxNorm * (1 + 1e-6), () -> "clipped " + clipped + " for maxNorm " + maxNorm);
            }
        }
        float[][] tiny = {{1, 1}};
        GradClip.clipGradNorm(tiny, Float.MIN_VALUE);
        assertEquals(Math.sqrt(2) * Float.MIN_VALUE, Exact.norm(tiny).doubleValue(), 1e-3 * Float.MIN_VALUE,
                "below the range the rounding to subnormals dominates: each element rounds up to MIN_VALUE");
    }

    /** {@code -0.0} is 0, so no zeroed element changes sign. */
    @Test
    void negativeZeroBoundsActAsZero() {
        float[][] grads = {{3f, -4f, 0f}};
        GradClip.clipGradNorm(grads, -0.0);
        assertEquals(Float.floatToRawIntBits(0f), Float.floatToRawIntBits(grads[0][0]), "3 * c must be +0.0");
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(grads[0][1]), "-4 * c must be -0.0");
        assertEquals(0L, Double.doubleToRawLongBits(GradClip.clipCoefficient(5, -0.0)));

        float[] values = {3f, -4f};
        GradClip.clipGradValue(Gradients.of(values), -0.0);
        assertEquals(Float.floatToRawIntBits(0f), Float.floatToRawIntBits(values[0]));
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(values[1]));

        float[] viaClipper = {3f, -4f};
        try (Clipper clipper = Clipper.builder().maxNorm(-0.0).build()) {
            clipper.clip(Gradients.of(viaClipper));
        }
        assertEquals(Float.floatToRawIntBits(0f), Float.floatToRawIntBits(viaClipper[0]));
    }

    /** An infinite maxNorm never clips, and clipCoefficient says so for a NaN norm as well. */
    @Test
    void infiniteMaxNormNeverClipsEvenANanNorm() {
        assertEquals(1.0, GradClip.clipCoefficient(Double.NaN, Double.POSITIVE_INFINITY));
        float[][] grads = {{Float.NaN, 2f}};
        assertTrue(Double.isNaN(GradClip.clipGradNorm(grads, Double.POSITIVE_INFINITY)));
        assertEquals(2f, grads[0][1], "the finite element is not written");
    }
}
