package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The adaptive thresholds step by step against their references ({@link ThresholdReference}), the
 * checkpoint, non-finite steps, and the arguments. The thresholds are driven directly here, as a
 * Clipper drives them (bound, then observe after a successful step); {@code AdaptiveClipperTest}
 * runs them inside Clippers.
 */
class ThresholdTest {

    private static final double TOLERANCE = 1e-12;

    /** Bound then observe: one successful step. */
    static double step(Threshold threshold, double norm) {
        double bound = threshold.bound(norm);
        threshold.observe(norm);
        return bound;
    }

    /**
     * Norms of a training run: log-normal noise around a slow drift, with spikes of 5x to 10^4x at
     * random steps, and non-finite steps when {@code nonFinite}.
     */
    static double[] norms(long seed, int steps, boolean nonFinite) {
        SplittableRandom random = new SplittableRandom(seed);
        double[] norms = new double[steps];
        for (int i = 0; i < steps; i++) {
            double drift = 1 + 0.5 * Math.sin(i / 200.0);
            norms[i] = drift * Math.exp(0.3 * random.nextGaussian());
            int kind = random.nextInt(100);
            if (kind < 3) {
                norms[i] *= Math.pow(10, random.nextDouble(0.7, 4));
            } else if (nonFinite && kind < 5 && i > 0) {
                norms[i] = random.nextBoolean() ? Double.NaN : Double.POSITIVE_INFINITY;
            }
        }
        return norms;
    }

    private static void assertClose(double expected, double actual, String where) {
        if (expected == actual) {
            return;
        }
        double error = Math.abs(actual - expected) / Math.abs(expected);
        assertTrue(error <= TOLERANCE, where + ": expected " + expected + ", got " + actual + " (relative error " + error + ")");
    }

    private static void assertMatches(ThresholdReference.Rule reference, Threshold threshold, double[] norms, String what) {
        for (int i = 0; i < norms.length; i++) {
            assertClose(reference.step(norms[i]), step(threshold, norms[i]), what + ", step " + i + ", norm " + norms[i]);
        }
    }

    @ParameterizedTest
    @ValueSource(doubles = {0.1, 10, 25, 100.0 / 3, 37.5, 50, 90, 99.9, 100})
    void autoClipMatchesTheSortedHistoryPercentileAtEveryStep(double percentile) {
        for (long seed = 1; seed <= 3; seed++) {
            assertMatches(ThresholdReference.autoClip(percentile), Threshold.autoClip(percentile),
                    norms(seed, 1500, seed == 3), "autoClip(" + percentile + "), seed " + seed);
        }
    }

    @Test
    void autoClipMatchesOverTiesAndConstantRuns() {
        double[] norms = new double[600];
        for (int i = 0; i < norms.length; i++) {
            norms[i] = i < 200 ? 1.0 : i < 400 ? (i % 3) * 0.5 : 1e-300 * (i % 7);
        }
        for (double p : new double[] {1, 50, 75, 99}) {
            assertMatches(ThresholdReference.autoClip(p), Threshold.autoClip(p), norms, "ties, p " + p);
        }
    }

    /** 200,000 steps, compared with a full sort every 10,000 steps: the order-statistic tree over a long run. */
    @Test
    void autoClipMatchesOverALongRun() {
        double[] norms = norms(11, 200_000, true);
        Threshold threshold = Threshold.autoClip(90);
        List<Double> history = new ArrayList<>();
        for (int i = 0; i < norms.length; i++) {
            double bound = step(threshold, norms[i]);
            if (Double.isFinite(norms[i])) {
                history.add(norms[i]);
            }
            if (i % 10_000 == 9_999) {
                assertClose(ThresholdReference.percentile(history, 90), bound, "step " + i);
            }
        }
    }

    @Test
    void zClipWithTheDefaultsMatchesTheReference() {
        for (long seed = 1; seed <= 4; seed++) {
            assertMatches(ThresholdReference.zClip(0.97, 2.5, 25, 1.0), Threshold.zClip(),
                    norms(seed, 3000, seed > 2), "zClip(), seed " + seed);
        }
    }

    @Test
    void zClipMatchesTheReferenceInOtherConfigurations() {
        double[][] configs = {
            {0.9, 2.0, 5, Double.POSITIVE_INFINITY},
            {0.99, 3.0, 1, 0.5},
            {0.5, 1.0, 100, 50},
            {0.97, 2.5, 25, Double.POSITIVE_INFINITY},
            {0, 2.5, 3, Double.POSITIVE_INFINITY},
            {1, 2.5, 3, 10},
        };
        for (double[] c : configs) {
            for (long seed = 5; seed <= 7; seed++) {
                double[] norms = norms(seed, 2000, seed == 7);
                for (int i = 0; i < norms.length; i++) {
                    norms[i] *= 3; // so that the cap of 0.5 .. 50 clips some spikes and not others
                }
                assertMatches(ThresholdReference.zClip(c[0], c[1], (int) c[2], c[3]),
                        Threshold.zClip(c[0], c[1], (int) c[2], c[3]), norms, Arrays.toString(c) + ", seed " + seed);
            }
        }
    }

    /** Spikes both above and below the cap, so that the capped and uncapped bounds both occur. */
    @Test
    void zClipSpikesGiveTheAdaptiveBoundAndCalmStepsTheCap() {
        Threshold zClip = Threshold.zClip(0.9, 2.0, 5, Double.POSITIVE_INFINITY);
        for (int i = 0; i < 5; i++) {
            assertEquals(Double.POSITIVE_INFINITY, step(zClip, 1 + 0.01 * i), "warm-up");
        }
        assertEquals(Double.POSITIVE_INFINITY, step(zClip, 1.01), "calm");
        double spike = step(zClip, 100);
        assertTrue(spike > 1 && spike < 2, "spike bound " + spike);
    }

    private static List<Supplier<Threshold>> adaptive() {
        return List.of(() -> Threshold.autoClip(10), () -> Threshold.autoClip(99.5), Threshold::zClip,
                () -> Threshold.zClip(0.9, 2.0, 5, Double.POSITIVE_INFINITY), () -> Threshold.zClip(0.97, 2.5, 40, 2.0));
    }

    @Test
    void aCheckpointAtStep30ResumesWithTheSameBitsAsTheUninterruptedRun() {
        double[] norms = norms(21, 400, true);
        for (Supplier<Threshold> make : adaptive()) {
            for (int at : new int[] {0, 1, 10, 30, 399}) {
                Threshold uninterrupted = make.get();
                long[] expected = new long[norms.length];
                for (int i = 0; i < norms.length; i++) {
                    expected[i] = Double.doubleToRawLongBits(step(uninterrupted, norms[i]));
                }
                Threshold first = make.get();
                long[] got = new long[norms.length];
                for (int i = 0; i < at; i++) {
                    got[i] = Double.doubleToRawLongBits(step(first, norms[i]));
                }
                double[] state = first.state();
                Threshold resumed = make.get().restore(state);
                assertNotSame(first, resumed);
                for (int i = at; i < norms.length; i++) {
                    got[i] = Double.doubleToRawLongBits(step(resumed, norms[i]));
                }
                assertArrayEquals(expected, got, make.get() + ", checkpoint at step " + at);
                assertArrayEquals(uninterrupted.state(), resumed.state(), make.get() + ": the final states");
            }
        }
    }

    @Test
    void nonFiniteNormsChangeNoState() {
        double[] norms = norms(3, 60, false);
        for (Supplier<Threshold> make : adaptive()) {
            Threshold threshold = make.get();
            for (int i = 0; i < norms.length; i++) {
                double[] before = threshold.state();
                for (double bad : new double[] {Double.NaN, Double.POSITIVE_INFINITY}) {
                    double bound = step(threshold, bad);
                    assertArrayEquals(before, threshold.state(), threshold + " after a " + bad + " norm at step " + i);
                    assertEquals(Double.doubleToRawLongBits(threshold.bound(bad)), Double.doubleToRawLongBits(bound));
                }
                step(threshold, norms[i]);
            }
        }
    }

    /** The bound of a step does not change the state: a step that fails after asking leaves no trace. */
    @Test
    void askingForABoundChangesNothing() {
        double[] norms = norms(8, 80, false);
        for (Supplier<Threshold> make : adaptive()) {
            Threshold threshold = make.get();
            for (double norm : norms) {
                double[] before = threshold.state();
                double bound = threshold.bound(norm);
                assertEquals(bound, threshold.bound(norm));
                assertArrayEquals(before, threshold.state());
                threshold.observe(norm);
            }
        }
    }

    @Test
    void nonFiniteStepsHaveTheDocumentedBounds() {
        Threshold autoClip = Threshold.autoClip(50);
        assertEquals(Double.POSITIVE_INFINITY, step(autoClip, Double.NaN), "empty history");
        step(autoClip, 1);
        step(autoClip, 3);
        assertEquals(2.0, step(autoClip, Double.POSITIVE_INFINITY), "the history's median");
        Threshold zClip = Threshold.zClip(0.9, 2, 2, 7);
        assertEquals(7.0, step(zClip, Double.NaN));
        step(zClip, 1);
        step(zClip, 1.1);
        assertEquals(7.0, step(zClip, Double.POSITIVE_INFINITY), "after the warm-up: the cap");
        assertEquals(4.0, step(Threshold.fixed(4), Double.NaN));
    }

    @Test
    void stateFormatIsDocumented() {
        Threshold autoClip = Threshold.autoClip(90);
        for (double norm : new double[] {3, 1, 2}) {
            step(autoClip, norm);
        }
        assertArrayEquals(new double[] {2, 90, 3, 1, 2, 3}, autoClip.state());
        Threshold zClip = Threshold.zClip(0.5, 2, 3, Double.POSITIVE_INFINITY);
        step(zClip, 1);
        step(zClip, 3);
        assertArrayEquals(new double[] {3, 0.5, 2, 3, Double.POSITIVE_INFINITY, 0, 0, 0, 2, 1, 3}, zClip.state());
        step(zClip, 2);
        assertArrayEquals(new double[] {3, 0.5, 2, 3, Double.POSITIVE_INFINITY, 1, 2, 2.0 / 3, 0}, zClip.state());
        assertArrayEquals(new double[] {1, 0.25}, Threshold.fixed(0.25).state());
    }

    @Test
    void badArgumentsAreRejected() {
        for (double p : new double[] {0, -1, 100.000001, Double.NaN, Double.POSITIVE_INFINITY}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Threshold.autoClip(p));
            assertTrue(e.getMessage().contains("percentile"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> Threshold.zClip(-0.1, 2.5, 25, 1));
        assertThrows(IllegalArgumentException.class, () -> Threshold.zClip(1.1, 2.5, 25, 1));
        assertThrows(IllegalArgumentException.class, () -> Threshold.zClip(Double.NaN, 2.5, 25, 1));
        assertThrows(IllegalArgumentException.class, () -> Threshold.zClip(0.97, 0, 25, 1));
        assertThrows(IllegalArgumentException.class, () -> Threshold.zClip(0.97, Double.POSITIVE_INFINITY, 25, 1));
        assertThrows(IllegalArgumentException.class, () -> Threshold.zClip(0.97, 2.5, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> Threshold.zClip(0.97, 2.5, 25, -1));
        assertThrows(IllegalArgumentException.class, () -> Threshold.zClip(0.97, 2.5, 25, Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> Threshold.fixed(-1));
        assertThrows(IllegalArgumentException.class, () -> Threshold.fixed(Double.NaN));
    }

    @Test
    void restoreRejectsStatesOfAnotherKindOrConfigurationOrOutOfRange() {
        Threshold autoClip = Threshold.autoClip(90);
        step(autoClip, 1);
        step(autoClip, 2);
        double[] good = autoClip.state();
        assertThrows(NullPointerException.class, () -> Threshold.autoClip(90).restore(null));
        assertRejected(() -> Threshold.autoClip(50).restore(good), "percentile");
        assertRejected(() -> Threshold.zClip().restore(good), "state");
        assertRejected(() -> Threshold.fixed(1).restore(good), "state");
        assertRejected(() -> Threshold.autoClip(90).restore(new double[0]), "empty");
        assertRejected(() -> Threshold.autoClip(90).restore(new double[] {2, 90, 2, 2, 1}), "ascending");
        assertRejected(() -> Threshold.autoClip(90).restore(new double[] {2, 90, 3, 1, 2}), "holds");
        assertRejected(() -> Threshold.autoClip(90).restore(new double[] {2, 90, 2, -1, 2}), "norm 0");
        assertRejected(() -> Threshold.autoClip(90).restore(new double[] {2, 90, 1, Double.NaN}), "norm 0");

        Threshold zClip = Threshold.zClip(0.9, 2, 3, 5);
        double[] z = zClip.state();
        assertRejected(() -> Threshold.zClip(0.9, 2, 4, 5).restore(z), "warmupSteps");
        assertRejected(() -> Threshold.zClip(0.9, 2, 3, 6).restore(z), "maxNorm");
        assertRejected(() -> Threshold.zClip(0.9, 2, 3, 5).restore(new double[] {3, 0.9, 2, 3, 5, 0, 0, 0, 3, 1, 1, 1}),
                "warm-up norms");
        assertRejected(() -> Threshold.zClip(0.9, 2, 3, 5).restore(new double[] {3, 0.9, 2, 3, 5, 2, 0, 0, 0}), "started");
        assertRejected(() -> Threshold.zClip(0.9, 2, 3, 5).restore(new double[] {3, 0.9, 2, 3, 5, 1, -1, 0, 0}), "mean");
        assertRejected(() -> Threshold.zClip(0.9, 2, 3, 5).restore(new double[] {3, 0.9, 2, 3, 5, 0, 1, 1, 0}),
                "before the warm-up ended");
        assertRejected(() -> Threshold.fixed(2).restore(Threshold.fixed(1).state()), "maxNorm");
        assertEquals(Threshold.fixed(2).state()[1], Threshold.fixed(2).restore(Threshold.fixed(2).state()).state()[1]);
    }

    private static void assertRejected(Runnable call, String fragment) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    @Test
    void anAdaptiveThresholdBelongsToOneClipperAndAFixedOneMayBeShared() {
        Threshold autoClip = Threshold.autoClip(10);
        try (Clipper first = Clipper.builder().threshold(autoClip).threads(1).build()) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> Clipper.builder().threshold(autoClip).threads(1).build());
            assertTrue(e.getMessage().contains("autoClip(10)"), e.getMessage());
            assertEquals(autoClip, first.threshold());
        }
        Threshold fixed = Threshold.fixed(1);
        try (Clipper a = Clipper.builder().threshold(fixed).threads(1).build();
             Clipper b = Clipper.builder().threshold(fixed).threads(1).build()) {
            assertEquals(1.0, a.maxNorm());
            assertEquals(1.0, b.maxNorm());
        }
    }

    @Test
    void toStringNamesTheFactoryCall() {
        assertEquals("autoClip(10)", Threshold.autoClip(10).toString());
        assertEquals("zClip(0.97, 2.5, 25, 1)", Threshold.zClip().toString());
        assertEquals("zClip(0.9, 2, 5, Infinity)", Threshold.zClip(0.9, 2, 5, Double.POSITIVE_INFINITY).toString());
        assertEquals("fixed(0.5)", Threshold.fixed(0.5).toString());
    }
}
