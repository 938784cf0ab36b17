package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * torch's coefficient rule on every entry point: {@code c = min(1, maxNorm / (norm + 1e-6))}, and
 * the gradients are multiplied whenever c is below 1, so a norm in {@code (maxNorm - 1e-6, maxNorm]},
 * or near a maxNorm below 1e-6, is scaled as torch scales it, not only a norm above {@code maxNorm}.
 */
class CoefficientRuleTest {

    /** torch's factor, written out here as the rule states it. */
    private static double torchRule(double maxNorm, double norm) {
        return Math.min(1, maxNorm / (norm + 1e-6));
    }

    /** Each element of {@code g} times the factor, rounded as float32 scaling promises: by {@code (float) c}. */
    private static float[] scaled(float[] g, double c) {
        float[] out = new float[g.length];
        for (int i = 0; i < g.length; i++) {
            out[i] = g[i] * (float) c;
        }
        return out;
    }

    /** The two cases where the old rule and torch's differ: a norm equal to maxNorm, and a maxNorm below 1e-6. */
    private static final float[][] CASES = {{3, 4}, {3e-8f, 4e-8f}};
    private static final double[] MAX_NORMS = {5, 1e-7};

    @Test
    void everyEntryPointScalesANormAtOrJustBelowMaxNormAsTorchDoes() throws Exception {
        for (int k = 0; k < CASES.length; k++) {
            float[] g = CASES[k];
            double maxNorm = MAX_NORMS[k];
            double norm = GradClip.totalNorm(Gradients.of(g.clone()));
            double c = torchRule(maxNorm, norm);
            assertTrue(c < 1, "the case needs a factor below 1: " + c);
            float[] expected = scaled(g, c);
            assertEquals(c, GradClip.clipCoefficient(norm, maxNorm));

            float[] viaGradients = g.clone();
            assertEquals(norm, GradClip.clipGradNorm(Gradients.of(viaGradients), maxNorm));
            assertArrayEquals(expected, viaGradients, "clipGradNorm(Gradients)");

            float[] viaWithNorm = g.clone();
            GradClip.clipGradsWithNorm(Gradients.of(viaWithNorm), maxNorm, norm);
            assertArrayEquals(expected, viaWithNorm, "clipGradsWithNorm");

            float[] viaList = g.clone();
            GradClip.clipGradNorm(List.of(MemorySegment.ofArray(viaList)), maxNorm);
            assertArrayEquals(expected, viaList, "clipGradNorm(List)");

            float[][] viaArrays = {g.clone()};
            GradClip.clipGradNorm(viaArrays, maxNorm);
            assertArrayEquals(expected, viaArrays[0], "clipGradNorm(float[][])");

            float[] viaClipper = g.clone();
            Gradients grads = Gradients.of(viaClipper);
            GradReport report = new GradReport(grads);
            try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).build()) {
                assertEquals(norm, clipper.clip(grads, report));
            }
            assertArrayEquals(expected, viaClipper, "Clipper");
            assertTrue(report.clipped());
            assertEquals(c, report.coefficient());

            // Sharded: the first element on one participant, the second on the other.
            float[][] shards = {{g[0]}, {g[1]}};
            InProcessAllReduce hook = new InProcessAllReduce(2, Duration.ofSeconds(60));
            List<Object> norms = InProcessAllReduceTest.runAll(2, p -> {
                try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).allReduce(hook).build()) {
                    return clipper.clip(Gradients.of(shards[p]));
                }
            });
            assertEquals(List.of(norm, norm), norms);
            assertArrayEquals(expected, new float[] {shards[0][0], shards[1][0]}, "sharded");
        }
    }

    /** A norm well below maxNorm leaves every bit as it was, read-only tensors included: c is exactly 1. */
    @Test
    void aNormWellBelowMaxNormWritesNothing() {
        float[] g = {0.3f, 0.4f};
        MemorySegment readOnly = MemorySegment.ofArray(g).asReadOnly();
        Gradients grads = Gradients.of(DType.FLOAT32, List.of(readOnly));
        assertEquals(1.0, GradClip.clipCoefficient(0.5, 1));
        assertEquals(0.5, GradClip.clipGradNorm(grads, 1), 1e-7);
        GradClip.clipGradsWithNorm(grads, 1, 1 - 2e-6);
        GradReport report = new GradReport(grads);
        try (Clipper clipper = Clipper.builder().maxNorm(1).build()) {
            clipper.clip(grads, report);
        }
        assertFalse(report.clipped());
        assertEquals(1.0, report.coefficient());
        assertArrayEquals(new float[] {0.3f, 0.4f}, readOnly.toArray(ValueLayout.JAVA_FLOAT));
    }

    @Test
    void theFactorForNonFiniteNormsAndBounds() {
        assertTrue(Double.isNaN(GradClip.clipCoefficient(Double.NaN, 1)));
        assertEquals(0.0, GradClip.clipCoefficient(Double.POSITIVE_INFINITY, 1));
        assertEquals(1.0, GradClip.clipCoefficient(Double.NaN, Double.POSITIVE_INFINITY));
        assertEquals(0L, Double.doubleToRawLongBits(GradClip.clipCoefficient(5, -0.0)));
        assertEquals(torchRule(1, 1), GradClip.clipCoefficient(1, 1));
        assertEquals(torchRule(1e-7, 5e-8), GradClip.clipCoefficient(5e-8, 1e-7));
    }
}
