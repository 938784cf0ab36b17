package dev.gradclip.dl4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.Clipper;
import dev.gradclip.GradReport;
import dev.gradclip.NonFinite;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;

/**
 * Real training steps, each from the same parameters and batch for two twins: one with the listener,
 * one without. The update DL4J applies is read from its gradient array after the step (plain SGD
 * leaves the update there, and the test checks that the parameters moved by exactly it).
 */
class GradClipListenerTest {

    /** Batch sizes of the steps: the listener must use each step's own. */
    private static final int[] BATCHES = {16, 16, 5, 16, 9};

    /** Catches the update the step applied: the gradient array after the updater, by parameter name. */
    private static final class UpdateCapture extends BaseTrainingListener {
        final Map<String, INDArray> update = new LinkedHashMap<>();

        @Override
        public void iterationDone(Model model, int iteration, int epoch) {
            update.clear();
            model.gradient().gradientForVariable().forEach((name, view) -> {
                if (view != null) { // defensive, as in the listener
                    update.put(name, view.dup());
                }
            });
        }
    }

    private record Twins(Model clipped, Consumer<DataSet> fitClipped, Model plain, Consumer<DataSet> fitPlain) {}

    private static Twins layerTwins(DataType type, boolean miniBatch) {
        MultiLayerNetwork clipped = Networks.layers(type, miniBatch);
        MultiLayerNetwork plain = Networks.layers(type, miniBatch);
        return new Twins(clipped, clipped::fit, plain, plain::fit);
    }

    private static Twins frozenTwins(String variant) {
        if (variant.equals("graph")) {
            ComputationGraph clipped = Networks.graph(DataType.DOUBLE, true);
            ComputationGraph plain = Networks.graph(DataType.DOUBLE, true);
            return new Twins(clipped, clipped::fit, plain, plain::fit);
        }
        MultiLayerNetwork clipped = Networks.frozen(variant.equals("with backprop"));
        MultiLayerNetwork plain = Networks.frozen(variant.equals("with backprop"));
        return new Twins(clipped, clipped::fit, plain, plain::fit);
    }

    private static Twins graphTwins(DataType type) {
        ComputationGraph clipped = Networks.graph(type);
        ComputationGraph plain = Networks.graph(type);
        return new Twins(clipped, clipped::fit, plain, plain::fit);
    }

    private static void listen(Model net, Object... listeners) {
        org.deeplearning4j.optimize.api.TrainingListener[] all =
                java.util.Arrays.copyOf(listeners, listeners.length, org.deeplearning4j.optimize.api.TrainingListener[].class);
        if (net instanceof MultiLayerNetwork m) {
            m.setListeners(all);
        } else {
            ((ComputationGraph) net).setListeners(all);
        }
    }

    /** The L2 norm over the named arrays, in double. */
    private static double norm(Map<String, INDArray> arrays, Set<String> names) {
        double sum = 0;
        for (String name : names) {
            double n = arrays.get(name).castTo(DataType.DOUBLE).norm2Number().doubleValue();
            sum += n * n;
        }
        return Math.sqrt(sum);
    }

    /** The L2 norm of a - c b over the named arrays, in double. */
    private static double distance(Map<String, INDArray> a, double c, Map<String, INDArray> b, Set<String> names) {
        double sum = 0;
        for (String name : names) {
            INDArray difference = a.get(name).castTo(DataType.DOUBLE).sub(b.get(name).castTo(DataType.DOUBLE).mul(c));
            double n = difference.norm2Number().doubleValue();
            sum += n * n;
        }
        return Math.sqrt(sum);
    }

    private static double[] values(INDArray array) {
        return array.castTo(DataType.DOUBLE).dup('c').data().asDouble();
    }

    /**
     * Trains the twins over {@link #BATCHES}, each step from the same parameters, and checks what the
     * listener did to the applied update: scaled to {@code maxNorm} (or left alone below it), the
     * direction kept, BatchNorm's statistics untouched.
     *
     * @param tolerance relative, for the norm and for the distance to the scaled twin update
     * @param options the Clipper's other settings
     */
    private static void trainAndCompare(Twins twins, DataType type, double maxNorm, boolean expectClip,
                                        double tolerance, Clipper.Builder options) {
        try (Clipper clipper = options.maxNorm(maxNorm).build()) {
            GradClipListener listener = new GradClipListener(clipper);
            UpdateCapture clippedUpdate = new UpdateCapture();
            UpdateCapture plainUpdate = new UpdateCapture();
            listen(twins.clipped(), listener, clippedUpdate);
            listen(twins.plain(), plainUpdate);
            assertNull(listener.lastReport(), "no report before the first clip");
            twins.clipped().setParams(twins.plain().params());
            for (int step = 0; step < BATCHES.length; step++) {
                twins.plain().setParams(twins.clipped().params());
                Map<String, INDArray> before = new LinkedHashMap<>();
                twins.clipped().paramTable().forEach((name, p) -> before.put(name, p.dup()));
                DataSet batch = Networks.batch(type, BATCHES[step], step);
                twins.fitPlain().accept(batch);
                twins.fitClipped().accept(batch);
                String where = "step " + step + " (batch " + BATCHES[step] + ")";

                // The captured updates are what moved the parameters, to the bit.
                for (Map.Entry<String, INDArray> p : twins.clipped().paramTable().entrySet()) {
                    INDArray update = clippedUpdate.update.get(p.getKey());
                    INDArray expected = update == null ? before.get(p.getKey()) : before.get(p.getKey()).sub(update);
                    assertArrayEquals(values(expected), values(p.getValue()), where + ": " + p.getKey());
                }

                Set<String> gradients = new HashSet<>();
                Set<String> statistics = new HashSet<>();
                for (String name : plainUpdate.update.keySet()) {
                    (Networks.isStatistic(name) ? statistics : gradients).add(name);
                }
                assertFalse(statistics.isEmpty(), "the networks have BatchNorm statistics");
                double lr = Networks.LEARNING_RATE;
                double plainNorm = norm(plainUpdate.update, gradients) / lr; // the applied gradient's norm
                double clippedNorm = norm(clippedUpdate.update, gradients) / lr;
                GradReport report = listener.lastReport();
                assertEquals(gradients, names(report), where + ": the report lists the gradients, not the statistics");
                assertEquals(plainNorm, report.totalNorm(), tolerance * plainNorm,
                        where + ": the report's norm is the applied (mean) gradient's");
                assertEquals(expectClip, report.clipped(), where);
                if (expectClip) {
                    assertTrue(plainNorm > 1.5 * maxNorm, where + ": the unclipped norm " + plainNorm + " is well above "
                            + maxNorm + ", so the clip is seen");
                    assertEquals(maxNorm, clippedNorm, 1e-5 * maxNorm, where + ": clipped to maxNorm");
                    // Closer: torch's clipped norm, maxNorm N / (N + 1e-6).
                    double torch = maxNorm * plainNorm / (plainNorm + 1e-6);
                    assertEquals(torch, clippedNorm, tolerance * torch, where + ": clipped as torch clips");
                    // The same direction: the clipped update is the plain one times torch's coefficient.
                    double c = maxNorm / (plainNorm + 1e-6);
                    assertEquals(c, report.coefficient(), tolerance * c, where);
                    double off = distance(clippedUpdate.update, c, plainUpdate.update, gradients);
                    assertTrue(off <= tolerance * norm(clippedUpdate.update, gradients),
                            where + ": off the scaled twin update by " + off);
                } else {
                    for (String name : gradients) {
                        assertArrayEquals(values(plainUpdate.update.get(name)), values(clippedUpdate.update.get(name)),
                                where + ": " + name + " unchanged under the threshold");
                    }
                }
                for (String name : statistics) {
                    assertTrue(norm(plainUpdate.update, Set.of(name)) > 0, where + ": " + name + " moves");
                    assertArrayEquals(values(plainUpdate.update.get(name)), values(clippedUpdate.update.get(name)),
                            where + ": " + name + " is a statistic, left alone");
                }
            }
        }
    }

    private static Set<String> names(GradReport report) {
        Set<String> out = new HashSet<>();
        for (int i = 0; i < report.size(); i++) {
            out.add(report.name(i));
        }
        return out;
    }

    /**
     * Float32: rounding the update (learning rate times gradient) costs 2^-24 relative. Float64: tight
     * enough to tell torch's coefficient maxNorm / (norm + 1e-6) from one applied to the sums
     * (maxNorm B / (B norm + 1e-6)), which differ by about 1e-6 / norm.
     */
    private static double tolerance(DataType type) {
        return type == DataType.DOUBLE ? 1e-10 : 1e-5;
    }

    @ParameterizedTest
    @EnumSource(value = DataType.class, names = {"FLOAT", "DOUBLE"})
    void multiLayerNetworkUpdateIsTheTwinsScaledToMaxNorm(DataType type) {
        trainAndCompare(layerTwins(type, true), type, 0.5, true, tolerance(type), Clipper.builder());
    }

    @ParameterizedTest
    @EnumSource(value = DataType.class, names = {"FLOAT", "DOUBLE"})
    void computationGraphUpdateIsTheTwinsScaledToMaxNorm(DataType type) {
        trainAndCompare(graphTwins(type), type, 0.5, true, tolerance(type), Clipper.builder());
    }

    /** Worker threads clip DL4J's memory too: the same results with every tensor handed to two threads. */
    @Test
    void twoThreadsClipTheSame() {
        trainAndCompare(graphTwins(DataType.DOUBLE), DataType.DOUBLE, 0.5, true, 1e-10,
                Clipper.builder().threads(2).minParallelBytes(0));
    }

    /**
     * A frozen layer has no gradient: left out, and unmoved. DL4J stops backprop at a FrozenLayer (in
     * a network and in a graph), and a FrozenLayerWithBackprop returns no gradient entries.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"layer", "with backprop", "graph"})
    void frozenLayersAreLeftOut(String variant) {
        Twins twins = frozenTwins(variant);
        String key = variant.equals("graph") ? "dense_b_W" : "0_W";
        INDArray frozen = twins.clipped().paramTable().get(key).dup();
        trainAndCompare(twins, DataType.DOUBLE, 0.5, true, 1e-10, Clipper.builder());
        assertArrayEquals(values(frozen), values(twins.clipped().paramTable().get(key)), "the frozen layer never moved");
    }

    /** Without minibatch division the applied gradient is the sum, and that is what is clipped. */
    @Test
    void withoutMinibatchDivisionTheSumIsClipped() {
        trainAndCompare(layerTwins(DataType.DOUBLE, false), DataType.DOUBLE, 2.0, true, 1e-10, Clipper.builder());
    }

    @Test
    void underTheThresholdTheUpdateIsUnchanged() {
        trainAndCompare(layerTwins(DataType.FLOAT, true), DataType.FLOAT, 1e4, false, 1e-5, Clipper.builder());
        trainAndCompare(graphTwins(DataType.FLOAT), DataType.FLOAT, 1e4, false, 1e-5, Clipper.builder());
    }

    @Test
    void theErrorPolicyStopsTheStepBeforeTheUpdater() {
        MultiLayerNetwork net = Networks.layers(DataType.FLOAT, true);
        try (Clipper clipper = Clipper.builder().maxNorm(1).nonFinite(NonFinite.ERROR).build()) {
            GradClipListener listener = new GradClipListener(clipper);
            net.setListeners(listener);
            DataSet bad = Networks.batch(DataType.FLOAT, 8, 1);
            bad.getFeatures().putScalar(3, 1, Double.NaN);
            INDArray before = net.params().dup();
            ArithmeticException e = assertThrows(ArithmeticException.class, () -> net.fit(bad));
            assertTrue(e.getMessage().contains("0_W"), e.getMessage());
            assertArrayEquals(values(before), values(net.params()), "nothing applied");
            net.fit(Networks.batch(DataType.FLOAT, 8, 2));
            assertTrue(Double.isFinite(listener.lastReport().totalNorm()), "training goes on after a skipped batch");
        }
    }

    @Test
    void aNewNetworkGetsNewViewsAndOtherModelsAreRefused() {
        try (Clipper clipper = Clipper.builder().maxNorm(1).build()) {
            GradClipListener listener = new GradClipListener(clipper);
            MultiLayerNetwork first = Networks.layers(DataType.FLOAT, true);
            first.setListeners(listener);
            first.fit(Networks.batch(DataType.FLOAT, 8, 1));
            GradReport firstReport = listener.lastReport();
            first.fit(Networks.batch(DataType.FLOAT, 8, 2));
            assertSame(firstReport, listener.lastReport(), "built once, refilled");
            ComputationGraph second = Networks.graph(DataType.FLOAT);
            second.setListeners(listener);
            second.fit(Networks.batch(DataType.FLOAT, 8, 3));
            assertTrue(names(listener.lastReport()).contains("dense_a_W"), names(listener.lastReport()).toString());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> listener.onGradientCalculation(first.getLayer(0)));
            assertTrue(e.getMessage().contains("MultiLayerNetwork or a ComputationGraph"), e.getMessage());
        }
        assertThrows(NullPointerException.class, () -> new GradClipListener(null));
    }

    /** DL4J's updater runs after the listener whatever it does: SKIP would let a NaN gradient through. */
    @Test
    void aClipperThatSkipsNonFiniteStepsIsRefused() {
        try (Clipper skipping = Clipper.builder().maxNorm(1).nonFinite(NonFinite.SKIP).build()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new GradClipListener(skipping));
            assertTrue(e.getMessage().contains("NonFinite.SKIP"), e.getMessage());
        }
    }
}
