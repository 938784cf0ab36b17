package dev.gradclip.djl;

import static dev.gradclip.djl.Twins.BATCH;
import static dev.gradclip.djl.Twins.INPUTS;
import static dev.gradclip.djl.Twins.OUTPUTS;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import ai.djl.training.Trainer;
import ai.djl.util.Pair;
import dev.gradclip.Clipper;
import dev.gradclip.GradReport;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * Real DJL training with the PyTorch engine: a model trained with the listener against a twin
 * trained without it, from the same weights and batches. Before each step the twin is set to the
 * listener's model's weights, so every step compares the clipped update with the framework's own
 * unclipped update from the same point.
 */
class GradClipListenerTrainingTest {

    private static final float LEARNING_RATE = 0.5f;
    private static final int STEPS = 6;

    @Test
    void theClippedUpdateIsTheUnclippedUpdateScaledToMaxNormEveryStep() {
        double maxNorm = 0.25;
        try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).build();
                Model model = Twins.model(Twins.mlp(), DataType.FLOAT32);
                Model twinModel = Twins.model(Twins.mlp(), DataType.FLOAT32)) {
            GradClipListener listener = new GradClipListener(clipper);
            assertNull(listener.lastReport());
            try (Trainer trainer = Twins.trainer(model, LEARNING_RATE, 7, listener);
                    Trainer twin = Twins.trainer(twinModel, LEARNING_RATE, 7)) {
                assertArrayEquals(Twins.values(model, false, false), Twins.values(twinModel, false, false));
                Supplier<Pair<float[], float[]>> batches = Twins.batches(11, 3f);
                for (int step = 0; step < STEPS; step++) {
                    Twins.copyWeights(model, twinModel);
                    double[] before = Twins.values(model, false, false);
                    assertArrayEquals(before, Twins.values(twinModel, false, false));
                    Pair<float[], float[]> batch = batches.get();

                    Twins.backward(trainer, batch, DataType.FLOAT32);
                    trainer.step();
                    Twins.backward(twin, batch, DataType.FLOAT32);
                    twin.step();

                    double[] clipped = Twins.minus(Twins.values(model, false, false), before);
                    double[] unclipped = Twins.minus(Twins.values(twinModel, false, false), before);
                    GradReport report = listener.lastReport();
                    String at = "step " + step + ": " + report;
                    assertTrue(report.clipped(), at);
                    // SGD applies -lr * g, so the update norm over lr is the gradient norm before and after the clip.
                    double unclippedNorm = Twins.norm(unclipped) / LEARNING_RATE;
                    assertTrue(unclippedNorm > 2 * maxNorm, at);
                    assertEquals(unclippedNorm, report.totalNorm(), 1e-5 * unclippedNorm, at);
                    assertEquals(maxNorm, Twins.norm(clipped) / LEARNING_RATE, 1e-5 * maxNorm, at);
                    double scale = Twins.norm(clipped) / Twins.norm(unclipped);
                    assertEquals(report.coefficient(), scale, 1e-5 * scale, at);
                    assertTrue(Twins.distanceFromMultiple(clipped, scale, unclipped) < 1e-5, at);
                }
            }
        }
    }

    @Test
    void anUpdateUnderTheThresholdIsTheFrameworksOwnToTheBit() {
        try (Clipper clipper = Clipper.builder().maxNorm(1e6).build();
                Model model = Twins.model(Twins.mlp(), DataType.FLOAT32);
                Model twinModel = Twins.model(Twins.mlp(), DataType.FLOAT32)) {
            GradClipListener listener = new GradClipListener(clipper);
            try (Trainer trainer = Twins.trainer(model, LEARNING_RATE, 7, listener);
                    Trainer twin = Twins.trainer(twinModel, LEARNING_RATE, 7)) {
                Supplier<Pair<float[], float[]>> batches = Twins.batches(11, 3f);
                for (int step = 0; step < 3; step++) {
                    Pair<float[], float[]> batch = batches.get();
                    Twins.backward(trainer, batch, DataType.FLOAT32);
                    trainer.step();
                    Twins.backward(twin, batch, DataType.FLOAT32);
                    twin.step();
                    assertArrayEquals(Twins.values(twinModel, false, false), Twins.values(model, false, false));
                    GradReport report = listener.lastReport();
                    assertFalse(report.clipped(), report.toString());
                    assertEquals(1.0, report.coefficient());
                    assertTrue(report.totalNorm() > 0);
                }
            }
        }
    }

    /**
     * DJL's L2 loss is half the mean of the squared errors over the batch and the outputs, and its
     * backward pass gives that mean's gradient: the one torch's {@code clip_grad_norm_} sees after
     * {@code loss.backward()} on a mean-reduced loss. For one linear layer {@code yHat = x W^T + b}
     * it is {@code dW = E^T x / (N O)} and {@code db = colsum(E) / (N O)}, {@code E = yHat - y}.
     */
    @Test
    void theListenerSeesTheGradientOfTheMeanLoss() {
        try (Clipper clipper = Clipper.builder().maxNorm(Double.POSITIVE_INFINITY).build();
                Model model = Twins.model(Twins.linear(), DataType.FLOAT32)) {
            GradClipListener listener = new GradClipListener(clipper);
            try (Trainer trainer = Twins.trainer(model, LEARNING_RATE, 3, listener)) {
                double[] weights = Twins.values(model, false, false); // W (OUTPUTS x INPUTS), then b
                Pair<float[], float[]> batch = Twins.batches(5, 2f).get();
                Twins.backward(trainer, batch, DataType.FLOAT32);

                float[] x = batch.getKey();
                float[] y = batch.getValue();
                double[] dW = new double[OUTPUTS * INPUTS];
                double[] db = new double[OUTPUTS];
                for (int n = 0; n < BATCH; n++) {
                    for (int o = 0; o < OUTPUTS; o++) {
                        double yHat = weights[OUTPUTS * INPUTS + o];
                        for (int i = 0; i < INPUTS; i++) {
                            yHat += (double) x[n * INPUTS + i] * weights[o * INPUTS + i];
                        }
                        double e = (yHat - y[n * OUTPUTS + o]) / (BATCH * OUTPUTS);
                        db[o] += e;
                        for (int i = 0; i < INPUTS; i++) {
                            dW[o * INPUTS + i] += e * x[n * INPUTS + i];
                        }
                    }
                }
                double expected = Math.hypot(Twins.norm(dW), Twins.norm(db));
                GradReport report = listener.lastReport();
                assertEquals(expected, report.totalNorm(), 1e-5 * expected, report.toString());
                assertEquals(Twins.norm(dW), report.norm(0), 1e-5 * Twins.norm(dW));
                assertEquals(Twins.norm(db), report.norm(1), 1e-5 * Twins.norm(db));
            }
        }
    }
}
