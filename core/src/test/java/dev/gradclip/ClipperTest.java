package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.internal.Clipping;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** The Clipper: policies, the report from the same pass, value clipping, and the same bits for any thread count. */
class ClipperTest {

    private static List<Tensors.Tensor> withValue(DType type, double value, int at) {
        double[] values = new double[300];
        for (int i = 0; i < values.length; i++) {
            values[i] = Tensors.round(type, (i % 7 - 3) * 0.25);
        }
        values[at] = value;
        List<Tensors.Tensor> tensors = new ArrayList<>(Tensors.mixed(3, 4, false));
        tensors.add(2, new Tensors.Tensor("layer.bad", type, values));
        return tensors;
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void errorPolicyThrowsNamingTheTensorAndWritesNothing(DType type) {
        for (double bad : new double[] {Double.NaN, Double.POSITIVE_INFINITY}) {
            Gradients grads = Tensors.gradients(null, withValue(type, bad, 17), 0);
            long[] before = Tensors.allBits(grads);
            try (Clipper clipper = Clipper.builder().maxNorm(1).nonFinite(NonFinite.ERROR).build()) {
                ArithmeticException e = assertThrows(ArithmeticException.class, () -> clipper.clip(grads));
                assertTrue(e.getMessage().contains("\"layer.bad\" (grads[2])"), e.getMessage());
                assertTrue(e.getMessage().contains("holds 1 non-finite value"), e.getMessage());
            }
            assertArrayEquals(before, Tensors.allBits(grads));
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void skipPolicyReturnsTheNormWritesNothingAndTheReportSaysWhere(DType type) {
        for (double bad : new double[] {Double.NaN, Double.NEGATIVE_INFINITY}) {
            Gradients grads = Tensors.gradients(null, withValue(type, bad, 299), 0);
            long[] before = Tensors.allBits(grads);
            GradReport report = new GradReport(grads);
            try (Clipper clipper = Clipper.builder().maxNorm(1).nonFinite(NonFinite.SKIP).build()) {
                double norm = clipper.clip(grads, report);
                assertEquals(Double.isNaN(bad) ? Double.NaN : Double.POSITIVE_INFINITY, norm);
                assertFalse(report.clipped());
                assertEquals(1.0, report.coefficient());
                assertEquals(1, report.nonFiniteCount(2));
                assertEquals(0, report.nonFiniteCount(0));
                assertTrue(report.toString().contains("layer.bad (1)"), report.toString());
            }
            assertArrayEquals(before, Tensors.allBits(grads));
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void propagatePolicyDoesWhatTorchDoes(DType type) {
        Gradients nan = Tensors.gradients(null, withValue(type, Double.NaN, 3), 0);
        try (Clipper clipper = Clipper.builder().maxNorm(1).build()) {
            assertTrue(Double.isNaN(clipper.clip(nan)));
            for (int t = 0; t < nan.size(); t++) {
                for (long i = 0; i < nan.numel(t); i++) {
                    assertTrue(Double.isNaN(Tensors.get(nan.segment(t), nan.dtype(t), i)), "every element NaN");
                }
            }
            Gradients inf = Tensors.gradients(null, withValue(type, Double.POSITIVE_INFINITY, 3), 0);
            assertEquals(Double.POSITIVE_INFINITY, clipper.clip(inf));
            assertTrue(Double.isNaN(Tensors.get(inf.segment(2), inf.dtype(2), 3)), "inf * 0 is NaN");
            assertEquals(0.0, Math.abs(Tensors.get(inf.segment(2), inf.dtype(2), 4)), "finite * 0 is zero");
        }
    }

    @Test
    void errorPolicySaysWhenEveryElementIsFiniteButTheNormOverflowed() {
        Gradients grads = Tensors.gradients(null,
                List.of(new Tensors.Tensor("big", DType.FLOAT64, new double[] {Double.MAX_VALUE, Double.MAX_VALUE})), 0);
        try (Clipper clipper = Clipper.builder().maxNorm(1).normType(1).nonFinite(NonFinite.ERROR).build()) {
            ArithmeticException e = assertThrows(ArithmeticException.class, () -> clipper.clip(grads));
            assertTrue(e.getMessage().contains("every element is finite"), e.getMessage());
        }
    }

    @ParameterizedTest
    @ValueSource(doubles = {1, 2, Double.POSITIVE_INFINITY, 3})
    void theReportMatchesSeparateCallsAndTheExactFigures(double p) {
        List<Tensors.Tensor> tensors = Tensors.mixed(99, 25, true);
        Gradients grads = Tensors.gradients(null, tensors, 0);
        Gradients copy = Tensors.gradients(null, tensors, 0);
        GradReport report = new GradReport(grads);
        double total = GradClip.totalNorm(copy, p);
        try (Clipper clipper = Clipper.builder().maxNorm(total / 2).normType(p).build()) {
            assertEquals(total, clipper.clip(grads, report));
        }
        assertEquals(total, report.totalNorm());
        assertTrue(report.clipped());
        assertEquals(total / 2 / (total + Clipping.EPS), report.coefficient());
        for (int t = 0; t < tensors.size(); t++) {
            List<Tensors.Tensor> one = List.of(tensors.get(t));
            // The same pass gives the same bits as a separate call over the tensor alone...
            assertEquals(GradClip.totalNorm(Tensors.gradients(null, one, 0), p), report.norm(t), "tensor " + t);
            // ...and the largest magnitude exactly.
            assertEquals(Tensors.exactNorm(one, Double.POSITIVE_INFINITY).doubleValue(), report.maxAbs(t));
            assertEquals(0, report.nonFiniteCount(t));
        }
    }

    @Test
    void aReportForAnotherSizeIsRejectedAndNothingIsWritten() {
        Gradients grads = Tensors.gradients(null, Tensors.mixed(1, 5, false), 0);
        long[] before = Tensors.allBits(grads);
        GradReport wrong = new GradReport(Tensors.gradients(null, Tensors.mixed(1, 3, false), 0));
        try (Clipper clipper = Clipper.builder().maxNorm(0).build()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> clipper.clip(grads, wrong));
            assertTrue(e.getMessage().contains("report"), e.getMessage());
        }
        assertArrayEquals(before, Tensors.allBits(grads));
        assertThrows(IllegalStateException.class, () -> Clipper.builder().build());
        assertThrows(IllegalArgumentException.class, () -> Clipper.builder().maxNorm(-1).build());
        assertThrows(IllegalArgumentException.class, () -> Clipper.builder().maxNorm(Double.NaN).build());
        assertThrows(IllegalArgumentException.class, () -> Clipper.builder().maxNorm(1).normType(0.5).build());
        assertThrows(IllegalArgumentException.class, () -> Clipper.builder().threads(0));
    }

    /** The same bits for 1, 2, 3, 4 and 7 threads: norms, reports and every output element, with each policy. */
    @ParameterizedTest
    @ValueSource(doubles = {1, 2, Double.POSITIVE_INFINITY, 3})
    void everyThreadCountGivesTheSameBits(double p) {
        List<Tensors.Tensor> tensors = new ArrayList<>(Tensors.mixed(1234, 40, true));
        tensors.add(new Tensors.Tensor("large", DType.BFLOAT16,
                Tensors.values(new java.util.SplittableRandom(1), DType.BFLOAT16, 5 * 4096 + 13, false)));
        for (NonFinite policy : NonFinite.values()) {
            long[] expectedBits = null;
            double[] expectedFigures = null;
            for (int threads : new int[] {1, 2, 3, 4, 7}) {
                try (Arena arena = Arena.ofShared();
                     Clipper clipper = Clipper.builder().maxNorm(1e-3).normType(p).nonFinite(policy).threads(threads)
                             .minParallelBytes(0).build()) {
                    Gradients grads = Tensors.gradients(arena, tensors, 1);
                    GradReport report = new GradReport(grads);
                    double norm = clipper.clip(grads, report);
                    double[] figures = new double[3 * grads.size() + 2];
                    figures[0] = norm;
                    figures[1] = report.coefficient();
                    for (int t = 0; t < grads.size(); t++) {
                        figures[2 + 3 * t] = report.norm(t);
                        figures[3 + 3 * t] = report.maxAbs(t);
                        figures[4 + 3 * t] = report.nonFiniteCount(t);
                    }
                    long[] bits = Tensors.allBits(grads);
                    if (expectedBits == null) {
                        expectedBits = bits;
                        expectedFigures = figures;
                    } else {
                        assertArrayEquals(expectedBits, bits, threads + " threads, " + policy);
                        assertArrayEquals(expectedFigures, figures, threads + " threads, " + policy);
                    }
                }
            }
        }
    }

    @Test
    void closingWhileAnotherThreadClipsNeitherHangsNorLosesAWorker() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            Gradients grads = Tensors.gradients(arena, Tensors.mixed(21, 20, false), 0);
            for (int round = 0; round < 20; round++) {
                Clipper clipper = Clipper.builder().maxNorm(Double.POSITIVE_INFINITY).threads(2).minParallelBytes(0).build();
                Thread clipping = new Thread(() -> {
                    try {
                        while (true) {
                            clipper.clip(grads);
                        }
                    } catch (IllegalStateException closed) {
                        // the Clipper was closed between two calls: the expected way out
                    }
                });
                clipping.start();
                Thread.sleep(round % 5);
                clipper.close();
                clipping.join(10_000);
                assertFalse(clipping.isAlive(), "a clip is still waiting for a worker after close(), round " + round);
            }
        }
    }

    @Test
    void confinedSegmentsAreClippedOnTheCallingThread() {
        try (Arena arena = Arena.ofConfined();
             Clipper clipper = Clipper.builder().maxNorm(1).threads(4).minParallelBytes(0).build()) {
            Gradients grads = Tensors.gradients(arena, Tensors.mixed(8, 10, false), 0);
            Gradients heap = Tensors.gradients(null, Tensors.mixed(8, 10, false), 0);
            assertEquals(GradClip.clipGradNorm(heap, 1), clipper.clip(grads));
            assertArrayEquals(Tensors.allBits(heap), Tensors.allBits(grads));
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void valueClippingClampsEveryElementToTheBoundRoundedToTheDtype(DType type) {
        double clipValue = 0.3; // not representable in any of the types but float64
        List<Tensors.Tensor> tensors = List.of(new Tensors.Tensor("v", type,
                Tensors.values(new java.util.SplittableRandom(4), type, 1000, false)));
        Gradients grads = Tensors.gradients(null, tensors, 0);
        double[] before = tensors.get(0).values();
        GradClip.clipGradValue(grads, clipValue);
        double bound = Tensors.round(type, clipValue);
        for (int i = 0; i < before.length; i++) {
            double expected = Math.max(-bound, Math.min(bound, before[i]));
            assertEquals(expected, Tensors.get(grads.segment(0), type, i), "element " + i);
        }
    }

    @Test
    void valueClippingKeepsNaNAndAcceptsReadOnlyTensorsWithNothingToClamp() {
        Gradients grads = Gradients.of(DType.FLOAT32, List.of(
                java.lang.foreign.MemorySegment.ofArray(new float[] {0.1f, -0.2f}).asReadOnly(),
                java.lang.foreign.MemorySegment.ofArray(new float[] {Float.NaN, 5f, -5f})));
        GradClip.clipGradValue(grads, 1);
        assertTrue(Float.isNaN(grads.segment(1).getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0)));
        assertEquals(1f, grads.segment(1).getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 1));
        Gradients readOnly = Gradients.of(DType.FLOAT32, List.of(
                java.lang.foreign.MemorySegment.ofArray(new float[] {3f}),
                java.lang.foreign.MemorySegment.ofArray(new float[] {0.1f, 2f}).asReadOnly()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradValue(readOnly, 1));
        assertTrue(e.getMessage().contains("grads[1] is read-only"), e.getMessage());
        assertEquals(3f, readOnly.segment(0).getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0), "nothing written");
        assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradValue(grads, -1));
        assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradValue(grads, Double.NaN));
    }

    @Test
    void valueClippingBendsTheDirectionWhereGlobalNormClippingKeepsIt() {
        // Seed 000's example: [50, 200, 30] at 100.
        Gradients byValue = Gradients.of(new float[] {50, 200, 30});
        GradClip.clipGradValue(byValue, 100);
        assertArrayEquals(new float[] {50, 100, 30}, byValue.segment(0).toArray(java.lang.foreign.ValueLayout.JAVA_FLOAT));
        Gradients byNorm = Gradients.of(new float[] {50, 200, 30});
        assertEquals(208.3, GradClip.clipGradNorm(byNorm, 100), 0.05);
        float[] clipped = byNorm.segment(0).toArray(java.lang.foreign.ValueLayout.JAVA_FLOAT);
        assertArrayEquals(new float[] {24.0f, 96.0f, 14.4f}, clipped, 0.01f);
        assertTrue(cosine(new float[] {50, 200, 30}, clipped) > 1 - 1e-6);
        assertTrue(cosine(new float[] {50, 200, 30}, new float[] {50, 100, 30}) < 0.98); // about 14 degrees off
    }

    @net.jqwik.api.Property(tries = 200)
    void globalClippingKeepsTheDirectionAndValueClippingDoesNotOnceAnElementIsClamped(
            @net.jqwik.api.ForAll @net.jqwik.api.constraints.Size(min = 2, max = 40) float @net.jqwik.api.constraints.FloatRange(min = -100, max = 100) [] g) {
        float max = 0;
        for (float x : g) {
            max = Math.max(max, Math.abs(x));
        }
        net.jqwik.api.Assume.that(max > 1);
        float[] byNorm = g.clone();
        float[] byValue = g.clone();
        GradClip.clipGradNorm(Gradients.of(byNorm), 0.5);
        GradClip.clipGradValue(Gradients.of(byValue), max / 2);
        assertTrue(cosine(g, byNorm) > 1 - 1e-6, "global-norm clipping kept the direction");
        // Clamping the largest elements to half their size shortens them relative to the others:
        // the direction changes unless every non-zero element has the same magnitude.
        boolean allSameMagnitude = true;
        for (float x : g) {
            allSameMagnitude &= x == 0 || Math.abs(x) == max;
        }
        if (!allSameMagnitude) {
            assertFalse(parallel(g, byValue), "value clipping bent the direction");
        }
    }

    /** Whether b is a multiple of a: a_i b_k == a_k b_i for all i, exact in double for float inputs. */
    private static boolean parallel(float[] a, float[] b) {
        int k = 0;
        for (int i = 1; i < a.length; i++) {
            if (Math.abs(a[i]) > Math.abs(a[k])) {
                k = i;
            }
        }
        for (int i = 0; i < a.length; i++) {
            if ((double) a[i] * b[k] != (double) a[k] * b[i]) {
                return false;
            }
        }
        return true;
    }

    private static double cosine(float[] a, float[] b) {
        double dot = 0;
        double na = 0;
        double nb = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        return dot / Math.sqrt(na * nb);
    }
}
