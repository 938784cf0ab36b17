package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Adaptive thresholds inside Clippers: each step clips as {@code clipGradsWithNorm} would at the
 * reference's bound, a checkpoint resumes the same bits, sharded participants agree with each
 * other and with the unsharded run, and the stall guard.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class AdaptiveClipperTest {

    private static final int TENSORS = 6;
    private static final int[] LENGTHS = {37, 300, 1, 4096 + 5, 64, 900};

    /** A training run's gradients: step {@code step} of tensor {@code t}, scaled by the step's spike factor. */
    private static final class Run {
        final double[] scales;
        final boolean[] nan;

        Run(long seed, int steps, boolean nonFinite) {
            scales = ThresholdTest.norms(seed, steps, false);
            nan = new boolean[steps];
            SplittableRandom random = new SplittableRandom(seed + 100);
            for (int i = 1; i < steps; i++) {
                nan[i] = nonFinite && random.nextInt(12) == 0;
            }
        }

        /** Tensor t's gradient at step i, the same in every process that holds it. */
        void fill(float[] tensor, int t, int step) {
            SplittableRandom random = new SplittableRandom(step * 1000L + t);
            for (int k = 0; k < tensor.length; k++) {
                tensor[k] = (float) (scales[step] * 0.01 * random.nextGaussian());
            }
            if (nan[step] && t == 3) {
                tensor[7] = Float.NaN;
            }
        }
    }

    private static float[][] arrays() {
        float[][] arrays = new float[TENSORS][];
        for (int t = 0; t < TENSORS; t++) {
            arrays[t] = new float[LENGTHS[t]];
        }
        return arrays;
    }

    private static Gradients named(float[][] arrays, List<Integer> which) {
        Gradients.Builder builder = Gradients.builder();
        for (int t : which) {
            builder.add("layer" + t, MemorySegment.ofArray(arrays[t]), DType.FLOAT32);
        }
        return builder.build();
    }

    private static List<Integer> all() {
        List<Integer> all = new ArrayList<>();
        for (int t = 0; t < TENSORS; t++) {
            all.add(t);
        }
        return all;
    }

    private static List<Supplier<Threshold>> thresholds() {
        return List.of(() -> Threshold.autoClip(10), () -> Threshold.autoClip(90), Threshold::zClip,
                () -> Threshold.zClip(0.9, 2.0, 5, Double.POSITIVE_INFINITY));
    }

    private static long[] bits(float[][] arrays) {
        List<Long> out = new ArrayList<>();
        for (float[] a : arrays) {
            for (float v : a) {
                out.add((long) Float.floatToRawIntBits(v));
            }
        }
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    /**
     * Every step: the report's bound is the reference's bound for the returned norm, and the
     * gradients are exactly what clipGradsWithNorm writes for that norm and bound.
     */
    @Test
    void eachStepClipsAtTheReferenceBound() {
        Run run = new Run(5, 120, false);
        List<ThresholdReference.Rule> references = List.of(ThresholdReference.autoClip(10), ThresholdReference.autoClip(90),
                ThresholdReference.zClip(0.97, 2.5, 25, 1.0), ThresholdReference.zClip(0.9, 2.0, 5, Double.POSITIVE_INFINITY));
        for (int c = 0; c < references.size(); c++) {
            float[][] arrays = arrays();
            float[][] expected = arrays();
            Gradients grads = named(arrays, all());
            Gradients expectedGrads = named(expected, all());
            GradReport report = new GradReport(grads);
            int clipped = 0;
            try (Clipper clipper = Clipper.builder().threshold(thresholds().get(c).get()).threads(2).minParallelBytes(0).build()) {
                for (int step = 0; step < run.scales.length; step++) {
                    for (int t = 0; t < TENSORS; t++) {
                        run.fill(arrays[t], t, step);
                        run.fill(expected[t], t, step);
                    }
                    double norm = clipper.clip(grads, report);
                    double bound = references.get(c).step(norm);
                    assertEquals(bound, report.maxNorm(), 1e-12 * bound, "step " + step);
                    assertEquals(report.maxNorm(), clipper.maxNorm());
                    GradClip.clipGradsWithNorm(expectedGrads, report.maxNorm(), norm);
                    assertArrayEquals(bits(expected), bits(arrays), "step " + step);
                    clipped += report.clipped() ? 1 : 0;
                }
            }
            assertTrue(clipped > 0 && clipped < run.scales.length, clipped + " steps clipped");
        }
    }

    @Test
    void maxNormIsAFixedThreshold() {
        Run run = new Run(9, 30, false);
        float[][] a = arrays();
        float[][] b = arrays();
        Gradients ga = named(a, all());
        Gradients gb = named(b, all());
        GradReport ra = new GradReport(ga);
        GradReport rb = new GradReport(gb);
        try (Clipper byMaxNorm = Clipper.builder().maxNorm(0.5).build();
             Clipper byThreshold = Clipper.builder().threshold(Threshold.fixed(0.5)).build()) {
            assertEquals(0.5, byThreshold.maxNorm());
            for (int step = 0; step < 30; step++) {
                for (int t = 0; t < TENSORS; t++) {
                    run.fill(a[t], t, step);
                    run.fill(b[t], t, step);
                }
                assertEquals(byMaxNorm.clip(ga, ra), byThreshold.clip(gb, rb));
                assertEquals(0.5, ra.maxNorm());
                assertEquals(0.5, rb.maxNorm());
                assertEquals(ra.coefficient(), rb.coefficient());
                assertArrayEquals(bits(a), bits(b));
            }
        }
    }

    /** Checkpoint after step 30, restore into a new Clipper: the same bounds and gradient bits as without the interruption. */
    @Test
    void aClipperResumedFromACheckpointClipsTheSameBits() {
        Run run = new Run(13, 80, true);
        for (Supplier<Threshold> make : thresholds()) {
            List<Long> expected = new ArrayList<>();
            float[][] arrays = arrays();
            Gradients grads = named(arrays, all());
            GradReport report = new GradReport(grads);
            try (Clipper clipper = Clipper.builder().threshold(make.get()).nonFinite(NonFinite.SKIP).build()) {
                for (int step = 0; step < 80; step++) {
                    for (int t = 0; t < TENSORS; t++) {
                        run.fill(arrays[t], t, step);
                    }
                    clipper.clip(grads, report);
                    expected.add(Double.doubleToRawLongBits(report.maxNorm()));
                    for (long bits : bits(arrays)) {
                        expected.add(bits);
                    }
                }
            }
            List<Long> got = new ArrayList<>();
            double[] checkpoint = null;
            Clipper clipper = Clipper.builder().threshold(make.get()).nonFinite(NonFinite.SKIP).build();
            for (int step = 0; step < 80; step++) {
                if (step == 30) {
                    checkpoint = clipper.threshold().state();
                    clipper.close();
                    clipper = Clipper.builder().threshold(make.get().restore(checkpoint)).nonFinite(NonFinite.SKIP).build();
                }
                for (int t = 0; t < TENSORS; t++) {
                    run.fill(arrays[t], t, step);
                }
                clipper.clip(grads, report);
                got.add(Double.doubleToRawLongBits(report.maxNorm()));
                for (long bits : bits(arrays)) {
                    got.add(bits);
                }
            }
            clipper.close();
            assertEquals(expected, got, make.get().toString());
        }
    }

    /** A step that fails after the norm (a read-only tensor that has to be scaled) leaves the threshold as it was. */
    @Test
    void aFailedStepLeavesTheThresholdUnchanged() {
        Threshold threshold = Threshold.autoClip(50);
        try (Clipper clipper = Clipper.builder().threshold(threshold).build()) {
            clipper.clip(Gradients.of(new float[] {3, 4}));
            clipper.clip(Gradients.of(new float[] {0.3f, 0.4f}));
            double[] before = threshold.state();
            Gradients readOnly = Gradients.builder()
                    .add("frozen", MemorySegment.ofArray(new float[] {30, 40}).asReadOnly(), DType.FLOAT32).build();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> clipper.clip(readOnly));
            assertTrue(e.getMessage().contains("frozen"), e.getMessage());
            assertArrayEquals(before, threshold.state());
        }
    }

    /**
     * After warm-up a clip with an adaptive threshold allocates nothing: ZClip holds a fixed state,
     * and AutoClip's history arrays double only when full (at 2,047 and 4,095 norms here, outside
     * the measured steps, between 2,100 and 4,000). First 15,000 clips with a fixed threshold, so that C2 has
     * compiled the kernels (until then the Vector API boxes its vectors).
     */
    @Test
    void adaptiveThresholdsAllocateNothingBetweenTheHistorysDoublings() {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        float[] warm = new float[300];
        try (Clipper fixed = Clipper.builder().maxNorm(1).threads(1).build()) {
            Gradients grads = Gradients.of(warm);
            GradReport report = new GradReport(grads);
            for (int i = 0; i < 15_000; i++) {
                java.util.Arrays.fill(warm, i % 2 == 0 ? 0.01f : 1f);
                fixed.clip(grads, report);
            }
        }
        for (Supplier<Threshold> make : thresholds()) {
            float[] g = new float[300];
            Gradients grads = Gradients.of(g);
            GradReport report = new GradReport(grads);
            SplittableRandom random = new SplittableRandom(3);
            try (Clipper clipper = Clipper.builder().threshold(make.get()).threads(1).build()) {
                Runnable step = () -> {
                    float scale = (float) Math.exp(random.nextGaussian());
                    for (int i = 0; i < g.length; i++) {
                        g[i] = scale * ((i % 13) - 6);
                    }
                    clipper.clip(grads, report);
                };
                for (int i = 0; i < 2100; i++) {
                    step.run();
                }
                // Windows of 300 steps: a step that allocated would show in every window; a rare
                // deoptimization while C2 settles the new code (which made an occasional 144 bytes) in one.
                List<Long> windows = new ArrayList<>();
                for (int done = 2100; done + 300 <= 4000 && !windows.contains(0L); done += 300) {
                    long before = threads.getCurrentThreadAllocatedBytes();
                    for (int i = 0; i < 300; i++) {
                        step.run();
                    }
                    windows.add(threads.getCurrentThreadAllocatedBytes() - before);
                }
                assertTrue(windows.contains(0L), make.get() + ": bytes per window of 300 steps " + windows);
            }
        }
    }

    /** Per participant: the bits of each step's bound, or the exception a step threw, and at which step. */
    private record Trace(List<Long> bounds, int failedAt, RuntimeException failure) {}

    /** Participant p of n holds tensors t with t % n == p; steps run until one throws. */
    private static Trace runParticipant(Run run, int steps, Clipper.Builder builder, int p, int n) {
        float[][] arrays = arrays();
        List<Integer> mine = new ArrayList<>();
        for (int t = 0; t < TENSORS; t++) {
            if (t % n == p) {
                mine.add(t);
            }
        }
        Gradients grads = named(arrays, mine);
        GradReport report = new GradReport(grads);
        List<Long> bounds = new ArrayList<>();
        try (Clipper clipper = builder.build()) {
            for (int step = 0; step < steps; step++) {
                for (int t : mine) {
                    run.fill(arrays[t], t, step);
                }
                try {
                    clipper.clip(grads, report);
                } catch (RuntimeException e) {
                    return new Trace(bounds, step, e);
                }
                bounds.add(Double.doubleToRawLongBits(report.maxNorm()));
            }
        }
        return new Trace(bounds, -1, null);
    }

    @Test
    void shardedParticipantsGetTheUnshardedThresholdsToTheBit() throws InterruptedException {
        Run run = new Run(17, 90, true);
        for (Supplier<Threshold> make : thresholds()) {
            Trace unsharded = runParticipant(run, 90, Clipper.builder().threshold(make.get()).nonFinite(NonFinite.SKIP), 0, 1);
            assertEquals(-1, unsharded.failedAt());
            for (int n : new int[] {2, 3}) {
                AllReduce hook = new InProcessAllReduce(n);
                List<Object> traces = InProcessAllReduceTest.runAll(n, p -> runParticipant(run, 90,
                        Clipper.builder().threshold(make.get()).nonFinite(NonFinite.SKIP).allReduce(hook), p, n));
                for (int p = 0; p < n; p++) {
                    Trace trace = (Trace) traces.get(p);
                    assertEquals(-1, trace.failedAt(), "participant " + p + ": " + trace.failure());
                    assertEquals(unsharded.bounds(), trace.bounds(), make.get() + ", participant " + p + " of " + n);
                }
            }
        }
    }

    @Test
    void theStallGuardThrowsAtTheKthSkipInARowNamingTheTensors() {
        float[][] arrays = arrays();
        Gradients grads = named(arrays, all());
        GradReport report = new GradReport(grads);
        try (Clipper clipper = Clipper.builder().maxNorm(1).nonFinite(NonFinite.SKIP).maxConsecutiveSkips(3).build()) {
            assertEquals(3, clipper.maxConsecutiveSkips());
            boolean[] bad = {false, true, true, false, true, true, true, true};
            for (int step = 0; step < bad.length; step++) {
                for (int t = 0; t < TENSORS; t++) {
                    java.util.Arrays.fill(arrays[t], 0.01f);
                }
                if (bad[step]) {
                    arrays[1][5] = Float.NaN;
                    arrays[4][0] = Float.POSITIVE_INFINITY;
                    arrays[4][1] = Float.NEGATIVE_INFINITY;
                }
                long[] before = bits(arrays);
                if (step < 6) {
                    clipper.clip(grads, report);
                    assertEquals(bad[step], !Double.isFinite(report.totalNorm()), "step " + step);
                    continue;
                }
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> clipper.clip(grads, report));
                String message = e.getMessage();
                assertTrue(message.contains((step - 3) + " steps in a row were skipped"), message);
                assertTrue(message.contains("\"layer1\" (grads[1]) (1 NaN or infinite value)"), message);
                assertTrue(message.contains("\"layer4\" (grads[4]) (2 NaN or infinite values)"), message);
                assertFalse(message.contains("layer0"), message);
                assertArrayEquals(before, bits(arrays), "nothing written");
            }
        }
    }

    @Test
    void theStallGuardIsOffByDefaultAndCountsOnlySkipSteps() {
        float[] bad = {Float.NaN, 1};
        for (NonFinite policy : new NonFinite[] {NonFinite.SKIP, NonFinite.PROPAGATE}) {
            try (Clipper clipper = Clipper.builder().maxNorm(1).nonFinite(policy).build()) {
                assertEquals(0, clipper.maxConsecutiveSkips());
                for (int step = 0; step < 100; step++) {
                    bad[0] = Float.NaN;
                    assertTrue(Double.isNaN(clipper.clip(Gradients.of(bad))));
                }
            }
        }
        try (Clipper clipper = Clipper.builder().maxNorm(1).nonFinite(NonFinite.PROPAGATE).maxConsecutiveSkips(1).build()) {
            for (int step = 0; step < 10; step++) {
                bad[0] = Float.NaN;
                assertTrue(Double.isNaN(clipper.clip(Gradients.of(bad))));
            }
        }
        assertThrows(IllegalArgumentException.class, () -> Clipper.builder().maxConsecutiveSkips(0));
        assertThrows(IllegalArgumentException.class, () -> Clipper.builder().maxConsecutiveSkips(-3));
    }

    /** Every participant throws at the same step; the one holding the NaN names it, the others say it is elsewhere. */
    @Test
    void shardedParticipantsAllThrowAtTheSameStepOfTheStallGuard() throws InterruptedException {
        Run run = new Run(23, 60, false);
        for (int step = 20; step < 60; step++) {
            run.nan[step] = step != 21; // skips from step 20 on, reset by step 21: the fourth skip in a row is step 25
        }
        int n = 3;
        AllReduce hook = new InProcessAllReduce(n);
        List<Object> traces = InProcessAllReduceTest.runAll(n, p -> runParticipant(run, 60, Clipper.builder().maxNorm(1)
                .nonFinite(NonFinite.SKIP).maxConsecutiveSkips(4).allReduce(hook), p, n));
        Trace unsharded = runParticipant(run, 60, Clipper.builder().maxNorm(1).nonFinite(NonFinite.SKIP).maxConsecutiveSkips(4), 0, 1);
        assertEquals(25, unsharded.failedAt());
        for (int p = 0; p < n; p++) {
            Trace trace = (Trace) traces.get(p);
            assertEquals(25, trace.failedAt(), "participant " + p);
            String message = trace.failure().getMessage();
            assertTrue(trace.failure() instanceof IllegalStateException, String.valueOf(trace.failure()));
            assertTrue(message.contains("4 steps in a row were skipped"), message);
            if (p == 0) { // holds layer3, where the NaN is
                assertTrue(message.contains("\"layer3\" (grads[1]) (1 NaN or infinite value)"), message);
            } else {
                assertTrue(message.contains("non-finite values are on another participant"), message);
            }
        }
    }
}
