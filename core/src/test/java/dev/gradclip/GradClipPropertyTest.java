package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.internal.Clipping;
import dev.gradclip.internal.Kernels;
import dev.gradclip.internal.ScalarKernels;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.math.BigDecimal;
import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Assume;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.constraints.DoubleRange;
import net.jqwik.api.constraints.Scale;

/**
 * Properties over random multi-tensor sets whose magnitudes spread over 50 decades and whose
 * lengths hit every tail of the lane layout and cross block boundaries.
 */
class GradClipPropertyTest {

    private static final Kernels REFERENCE = new ScalarKernels();
    private static final double BOUND = Clipping.l2Bound();

    @Provide
    Arbitrary<float[][]> gradientSets() {
        Arbitrary<Float> element = Combinators.combine(
                        Arbitraries.floats().between(1f, 10f),
                        Arbitraries.integers().between(-25, 25),
                        Arbitraries.of(1, -1))
                .as((mantissa, exponent, sign) -> (float) (sign * mantissa * Math.pow(10, exponent)));
        Arbitrary<Integer> length = Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.integers().between(0, 80)),
                Tuple.of(3, Arbitraries.integers().between(80, 3000)),
                Tuple.of(1, Arbitraries.integers().between(Kernels.BLOCK - 40, 2 * Kernels.BLOCK + 40)));
        Arbitrary<float[]> tensor = length.flatMap(n -> element.array(float[].class).ofSize(n));
        return tensor.array(float[][].class).ofMinSize(1).ofMaxSize(6);
    }

    @Property(tries = 300)
    void normIsWithinRelativeErrorBoundOfExactNorm(@ForAll("gradientSets") float[][] grads) {
        BigDecimal exact = Exact.norm(grads);
        assertTrue(Exact.relativeError(GradClip.totalNorm(grads), exact) <= BOUND);
        double fallback = Norms.norm(REFERENCE, Gradients.of(grads), 2);
        assertTrue(Exact.relativeError(fallback, exact) <= BOUND);
    }

    @Property(tries = 300)
    void activeKernelsMatchScalarReferenceToTheBit(@ForAll("gradientSets") float[][] grads) {
        List<MemorySegment> segments = Arrays.asList(heap(grads));
        assertEquals(Norms.norm(REFERENCE, Gradients.of(DType.FLOAT32, segments), 2), GradClip.totalNorm(segments));
    }

    @Property(tries = 200)
    void clippingScalesEveryElementByOneCommonCoefficient(
            @ForAll("gradientSets") float[][] grads, @ForAll @DoubleRange(min = 1e-3, max = 0.999) @Scale(4) double fraction) {
        double norm = GradClip.totalNorm(grads);
        Assume.that(norm > 0);
        float[][] before = Buffers.copy(grads);
        double maxNorm = norm * fraction;

        assertEquals(norm, GradClip.clipGradNorm(grads, maxNorm));

        double c = maxNorm / (norm + 1e-6);
        for (int t = 0; t < grads.length; t++) {
            for (int i = 0; i < grads[t].length; i++) {
                // Exactly the float32 product with the one common float32 coefficient...
                assertEquals(before[t][i] * (float) c, grads[t][i]);
                // ...which is within one ulp of the float32 rounding of g * c in exact arithmetic.
                float rounded = new java.math.BigDecimal(before[t][i]).multiply(new java.math.BigDecimal(c)).floatValue();
                assertTrue(Math.abs(grads[t][i] - rounded) <= Math.ulp(rounded),
                        () -> "element off by more than one ulp of fl32(g*c)");
            }
        }
    }

    @Property(tries = 200)
    void clippingKeepsNormRatiosBetweenAndWithinTensors(
            @ForAll("gradientSets") float[][] grads, @ForAll @DoubleRange(min = 1e-3, max = 0.999) @Scale(4) double fraction) {
        float[][] before = Buffers.copy(grads);
        double norm = GradClip.totalNorm(grads);
        Assume.that(norm > 0);
        GradClip.clipGradNorm(grads, norm * fraction);
        double c = norm * fraction / (norm + 1e-6);
        for (int t = 0; t < grads.length; t++) {
            double tensorBefore = GradClip.totalNorm(new float[][] {before[t]});
            double tensorAfter = GradClip.totalNorm(new float[][] {grads[t]});
            // Each tensor shrinks by the same c, up to float32 rounding of its largest elements.
            assertEquals(tensorBefore * c, tensorAfter, tensorBefore * c * 1e-6 + Float.MIN_NORMAL);
        }
    }

    @Property(tries = 200)
    void clippedNormIsAtMostMaxNorm(
            @ForAll("gradientSets") float[][] grads, @ForAll @DoubleRange(min = 1e-3, max = 0.999) @Scale(4) double fraction) {
        double norm = GradClip.totalNorm(grads);
        Assume.that(norm > 0);
        double maxNorm = norm * fraction;
        GradClip.clipGradNorm(grads, maxNorm);
        assertTrue(GradClip.totalNorm(grads) <= maxNorm * (1 + 1e-6));
    }

    @Property(tries = 200)
    void nothingIsWrittenWhenTheFactorIsOne(
            @ForAll("gradientSets") float[][] grads, @ForAll @DoubleRange(min = 1.0, max = 1e3) @Scale(4) double factor) {
        float[][] before = Buffers.copy(grads);
        double norm = GradClip.totalNorm(grads);
        double maxNorm = (norm + 1e-6) * factor; // min(1, maxNorm / (norm + 1e-6)) is 1
        // Read-only segments: any write would throw, not just change bits.
        MemorySegment[] readOnly = heap(grads);
        for (int i = 0; i < readOnly.length; i++) {
            readOnly[i] = readOnly[i].asReadOnly();
        }
        assertEquals(norm, GradClip.clipGradNorm(Arrays.asList(readOnly), maxNorm));
        assertEquals(norm, GradClip.clipGradNorm(grads, maxNorm));
        for (int t = 0; t < grads.length; t++) {
            assertArrayEquals(before[t], grads[t]);
        }
    }

    @Property(tries = 100)
    void repeatedResultsAreBitIdenticalAcrossCallsAndBufferKinds(@ForAll("gradientSets") float[][] grads) {
        long first = Double.doubleToRawLongBits(GradClip.totalNorm(grads));
        assertEquals(first, Double.doubleToRawLongBits(GradClip.totalNorm(grads)));
        try (Arena arena = Arena.ofConfined()) {
            assertEquals(first, Double.doubleToRawLongBits(GradClip.totalNorm(Buffers.nativeCopy(arena, grads, 0))));
            assertEquals(first, Double.doubleToRawLongBits(GradClip.totalNorm(Buffers.nativeCopy(arena, grads, 3))));
        }
    }

    private static MemorySegment[] heap(float[][] grads) {
        MemorySegment[] segments = new MemorySegment[grads.length];
        for (int i = 0; i < grads.length; i++) {
            segments[i] = MemorySegment.ofArray(grads[i]);
        }
        return segments;
    }
}
