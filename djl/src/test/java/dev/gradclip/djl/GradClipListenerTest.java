package dev.gradclip.djl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Block;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.gradclip.Clipper;
import dev.gradclip.GradReport;
import dev.gradclip.NonFinite;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** The listener's bookkeeping on real DJL training: what it clips, when it builds, what it refuses, what it allocates. */
class GradClipListenerTest {

    private static final float LEARNING_RATE = 0.5f;

    @Test
    void frozenParametersAreLeftOutAndNotUpdated() {
        double maxNorm = 0.1;
        try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).build();
                Model model = Twins.model(Twins.mlp(), DataType.FLOAT32);
                Model twinModel = Twins.model(Twins.mlp(), DataType.FLOAT32)) {
            freezeFirstLayer(model);
            freezeFirstLayer(twinModel);
            GradClipListener listener = new GradClipListener(clipper);
            try (Trainer trainer = Twins.trainer(model, LEARNING_RATE, 7, listener);
                    Trainer twin = Twins.trainer(twinModel, LEARNING_RATE, 7)) {
                double[] frozen = firstLayer(model);
                double[] trained = Twins.values(model, true, false);
                Pair<float[], float[]> batch = Twins.batches(3, 3f).get();
                Twins.backward(trainer, batch, DataType.FLOAT32);
                trainer.step();
                Twins.backward(twin, batch, DataType.FLOAT32);
                twin.step();

                GradReport report = listener.lastReport();
                assertEquals(2, report.size(), report.toString());
                assertEquals(List.of("03Linear_weight", "03Linear_bias"), List.of(report.name(0), report.name(1)));
                assertArrayEquals(frozen, firstLayer(model));
                double[] clipped = Twins.minus(Twins.values(model, true, false), trained);
                double[] unclipped = Twins.minus(Twins.values(twinModel, true, false), trained);
                assertEquals(Twins.norm(unclipped) / LEARNING_RATE, report.totalNorm(), 1e-5 * report.totalNorm());
                assertEquals(maxNorm, Twins.norm(clipped) / LEARNING_RATE, 1e-5 * maxNorm);
                double scale = Twins.norm(clipped) / Twins.norm(unclipped);
                assertTrue(Twins.distanceFromMultiple(clipped, scale, unclipped) < 1e-5);
            }
        }
    }

    @Test
    void freezingOrUnfreezingBetweenStepsBuildsAgain() {
        try (Clipper clipper = Clipper.builder().maxNorm(0.1).build();
                Model model = Twins.model(Twins.mlp(), DataType.FLOAT32)) {
            GradClipListener listener = new GradClipListener(clipper);
            try (Trainer trainer = Twins.trainer(model, LEARNING_RATE, 7, listener)) {
                Supplier<Pair<float[], float[]>> batches = Twins.batches(3, 3f);
                Twins.backward(trainer, batches.get(), DataType.FLOAT32);
                trainer.step();
                GradReport all = listener.lastReport();
                assertEquals(4, all.size());

                freezeFirstLayer(model);
                Twins.backward(trainer, batches.get(), DataType.FLOAT32);
                trainer.step();
                assertEquals(2, listener.lastReport().size());
                assertNotSame(all, listener.lastReport());

                model.getBlock().getChildren().get(0).getValue().freezeParameters(false);
                Twins.backward(trainer, batches.get(), DataType.FLOAT32);
                GradReport again = listener.lastReport();
                assertEquals(4, again.size());
                double applied = again.totalNorm() * again.coefficient();
                assertEquals(applied, Twins.norm(Twins.values(model, true, true)), 1e-5 * applied);
            }
        }
    }

    /** The listener builds once and relies on DJL keeping each gradient tensor in place; this checks it does. */
    @Test
    void gradientsStayAtTheSameAddressAcrossSteps() {
        try (Clipper clipper = Clipper.builder().maxNorm(0.1).build();
                Model model = Twins.model(Twins.mlp(), DataType.FLOAT32)) {
            GradClipListener listener = new GradClipListener(clipper);
            try (Trainer trainer = Twins.trainer(model, LEARNING_RATE, 7, listener)) {
                Supplier<Pair<float[], float[]>> batches = Twins.batches(3, 3f);
                Twins.backward(trainer, batches.get(), DataType.FLOAT32);
                long[] first = gradientAddresses(model);
                GradReport report = listener.lastReport();
                for (int step = 0; step < 5; step++) {
                    trainer.step();
                    Twins.backward(trainer, batches.get(), DataType.FLOAT32);
                    assertArrayEquals(first, gradientAddresses(model), "step " + step);
                    assertSame(report, listener.lastReport(), "built again at step " + step);
                }
            }
        }
    }

    /**
     * After warm-up, a round of 1,000 clips through the listener allocates nothing. The core's
     * clip is allocation-free once C2 has compiled it (escape analysis); on a loaded machine a
     * recompilation can briefly run interpreted code that allocates, so the test looks for one
     * clean round among up to 20. Per-call allocation in the listener (a gradient handle fetched
     * every step, say) would show in every round.
     */
    @Test
    void aClipAllocatesNothingAfterTheFirst() {
        com.sun.management.ThreadMXBean threads =
                (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        assertTrue(threads.isThreadAllocatedMemorySupported() && threads.isThreadAllocatedMemoryEnabled());
        try (Clipper clipper = Clipper.builder().maxNorm(0.1).build();
                Model model = Twins.model(Twins.mlp(), DataType.FLOAT32)) {
            GradClipListener listener = new GradClipListener(clipper);
            try (Trainer trainer = Twins.trainer(model, LEARNING_RATE, 7, listener)) {
                Twins.backward(trainer, Twins.batches(3, 3f).get(), DataType.FLOAT32);
                GradReport report = listener.lastReport();
                for (int i = 0; i < 15_000; i++) {
                    listener.onTrainingBatch(trainer, null);
                }
                long[] rounds = new long[20];
                int round = 0;
                do {
                    long before = threads.getCurrentThreadAllocatedBytes();
                    for (int i = 0; i < 1_000; i++) {
                        listener.onTrainingBatch(trainer, null);
                    }
                    rounds[round] = threads.getCurrentThreadAllocatedBytes() - before;
                } while (rounds[round++] != 0 && round < rounds.length);
                assertEquals(0, rounds[round - 1], "bytes per round of 1,000 clips: " + Arrays.toString(rounds));
                assertSame(report, listener.lastReport());
            }
        }
    }

    /** float16 trains on the CPU in DJL 0.36: the clipped gradients are the twin's scaled, within half precision. */
    @Test
    void float16GradientsAreClipped() {
        assertClippedGradientsAgainstTwin(DataType.FLOAT16, 2e-3, trainer -> trainer.step());
    }

    /**
     * float64 gradients alias and clip, but DJL 0.36's {@code Trainer.step()} fails on a float64
     * model (its first-step gradient check reads the gradients as float32): a limit of DJL,
     * checked here so that the documentation is updated when it goes away.
     */
    @Test
    void float64GradientsAreClippedButDjlCannotStepThem() {
        assertClippedGradientsAgainstTwin(DataType.FLOAT64, 1e-12, trainer -> {
            IllegalStateException e = assertThrows(IllegalStateException.class, trainer::step);
            assertTrue(e.getMessage().contains("float64"), e.getMessage());
        });
    }

    /** The listener's model's gradients after one backward pass against its twin's, then {@code andThen} on its trainer. */
    private static void assertClippedGradientsAgainstTwin(DataType type, double tolerance, Consumer<Trainer> andThen) {
        double maxNorm = 0.25;
        try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).build();
                Model model = Twins.model(Twins.mlp(), type);
                Model twinModel = Twins.model(Twins.mlp(), type)) {
            GradClipListener listener = new GradClipListener(clipper);
            try (Trainer trainer = Twins.trainer(model, LEARNING_RATE, 7, listener);
                    Trainer twin = Twins.trainer(twinModel, LEARNING_RATE, 7)) {
                Pair<float[], float[]> batch = Twins.batches(3, 3f).get();
                Twins.backward(trainer, batch, type);
                Twins.backward(twin, batch, type);
                double[] clipped = Twins.values(model, true, true);
                double[] unclipped = Twins.values(twinModel, true, true);
                GradReport report = listener.lastReport();
                assertTrue(report.clipped() && report.totalNorm() > 2 * maxNorm, report.toString());
                assertEquals(Twins.norm(unclipped), report.totalNorm(), tolerance * report.totalNorm(), report.toString());
                // torch's coefficient maxNorm / (norm + 1e-6) leaves the norm a hair under maxNorm.
                double expected = maxNorm * report.totalNorm() / (report.totalNorm() + 1e-6);
                assertEquals(expected, Twins.norm(clipped), tolerance * maxNorm);
                double scale = Twins.norm(clipped) / Twins.norm(unclipped);
                assertTrue(Twins.distanceFromMultiple(clipped, scale, unclipped) < tolerance);
                andThen.accept(trainer);
            }
        }
    }

    @Test
    void aTrainedParameterWithoutAGradientIsNamed() {
        // The second branch is computed and dropped: its parameters get no gradient.
        Block block = new ParallelBlock(outputs -> outputs.get(0),
                List.of(Linear.builder().setUnits(Twins.OUTPUTS).build(),
                        Linear.builder().setUnits(Twins.OUTPUTS).build()));
        try (Clipper clipper = Clipper.builder().maxNorm(0.1).build();
                Model model = Twins.model(block, DataType.FLOAT32)) {
            GradClipListener listener = new GradClipListener(clipper);
            try (Trainer trainer = Twins.trainer(model, LEARNING_RATE, 7, listener)) {
                double[] weights = Twins.values(model, false, false);
                IllegalStateException e = assertThrows(IllegalStateException.class,
                        () -> Twins.backward(trainer, Twins.batches(3, 3f).get(), DataType.FLOAT32));
                assertTrue(e.getMessage().contains("\"02Linear_weight\"") && e.getMessage().contains("freeze"),
                        e.getMessage());
                assertArrayEquals(weights, Twins.values(model, false, false));
            }
        }
    }

    @Test
    void nonFiniteGradientsWithErrorStopBeforeTheStepAndAreReported() {
        try (Clipper clipper = Clipper.builder().maxNorm(0.1).nonFinite(NonFinite.ERROR).build();
                Model model = Twins.model(Twins.mlp(), DataType.FLOAT32)) {
            GradClipListener listener = new GradClipListener(clipper);
            try (Trainer trainer = Twins.trainer(model, LEARNING_RATE, 7, listener)) {
                Pair<float[], float[]> batch = Twins.batches(3, 3f).get();
                batch.getValue()[4] = Float.NaN;
                assertThrows(ArithmeticException.class, () -> Twins.backward(trainer, batch, DataType.FLOAT32));
                GradReport report = listener.lastReport();
                assertTrue(Double.isNaN(report.totalNorm()) && !report.clipped(), report.toString());
                assertTrue(report.nonFiniteCount(3) > 0, report.toString());
            }
        }
    }

    @Test
    void refusesNullAndSkip() {
        assertEquals("clipper is null",
                assertThrows(NullPointerException.class, () -> new GradClipListener(null)).getMessage());
        try (Clipper skip = Clipper.builder().maxNorm(1).nonFinite(NonFinite.SKIP).build()) {
            assertTrue(assertThrows(IllegalArgumentException.class, () -> new GradClipListener(skip))
                    .getMessage().contains("SKIP"));
        }
        try (Clipper clipper = Clipper.builder().maxNorm(1).build()) {
            assertEquals("trainer is null", assertThrows(NullPointerException.class,
                    () -> new GradClipListener(clipper).onTrainingBatch(null, null)).getMessage());
        }
    }

    private static void freezeFirstLayer(Model model) {
        model.getBlock().getChildren().get(0).getValue().freezeParameters(true);
    }

    private static double[] firstLayer(Model model) {
        double[] all = Twins.values(model, false, false);
        return Arrays.copyOf(all, 5 * 8 + 8);
    }

    private static long[] gradientAddresses(Model model) {
        return Twins.parameters(model).stream().mapToLong(p -> {
            try (NDArray gradient = p.getArray().getGradient()) {
                return DjlSegments.of(gradient).address();
            }
        }).toArray();
    }
}
